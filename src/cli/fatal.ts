/**
 * What reaches the top of the `vmsim` command: whatever escapes a command
 * ends as one line on stderr, never a stack trace. An error nobody expected
 * is vmsim's own bug (`vmsim: internal error: …`, exit 1, the stack only with
 * VMSIM_DEBUG set); a file the system would not read or write, or a machine
 * that stopped where no command looked for it, is an error of the run (exit
 * 1). A reader that closed the pipe (`vmsim … | head`) ends the command
 * quietly, as SIGPIPE ends a C tool.
 */
import { MachineError } from "../workers/machine.js";

/** A run found a failure, or could not go on. */
export const EXIT_FAILED = 1;

/** The environment variable that adds the stack to an internal error. */
export const DEBUG_ENV = "VMSIM_DEBUG";

/** VMSIM_DEBUG is set (to anything but "" or "0"). */
export function debugOn(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[DEBUG_ENV];
  return v !== undefined && v !== "" && v !== "0";
}

/** An error of the operating system (fs, a pipe): it names its call, and is no bug of vmsim's. */
function isSystemError(e: Error): e is NodeJS.ErrnoException {
  return typeof (e as NodeJS.ErrnoException).syscall === "string";
}

const oneLine = (s: string) => s.trim().replace(/\s*\n\s*/g, " ");

/**
 * The lines an error that escaped every command prints on stderr: one line,
 * then the stack when `debug` is on.
 */
export function escapedErrorLines(e: unknown, debug: boolean): string[] {
  const err = e instanceof Error ? e : new Error(String(e));
  const message = oneLine(err.message) || err.name;
  let line: string;
  if (err instanceof MachineError) line = `vmsim: error: the machine stopped: ${message}`;
  else if (isSystemError(err)) line = `vmsim: error: ${message}`;
  else line = `vmsim: internal error: ${message} (please report; rerun with ${DEBUG_ENV}=1 for the stack)`;
  return debug && err.stack !== undefined ? [line, err.stack] : [line];
}

/** Ends the process on an error that escaped: its line on stderr, exit 1 (worker threads and all). */
export function dieOfEscapedError(e: unknown): never {
  for (const line of escapedErrorLines(e, debugOn())) process.stderr.write(`${line}\n`);
  process.exit(EXIT_FAILED);
}

/**
 * A closed pipe on stdout or stderr ends the command at once, with the exit
 * status it has so far (0 for help and for a run cut short before its
 * verdict); any other error of the stream is one escaped.
 */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") dieOfEscapedError(e);
    process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
  });
}

/**
 * Arms the top level before a command runs: closed pipes end it quietly,
 * and an error thrown or rejected outside the command's own await (a timer,
 * an event) ends it as {@link dieOfEscapedError} does.
 */
export function armTopLevel(): void {
  quietOnClosedPipe(process.stdout);
  quietOnClosedPipe(process.stderr);
  process.on("uncaughtException", dieOfEscapedError);
  process.on("unhandledRejection", dieOfEscapedError);
}
