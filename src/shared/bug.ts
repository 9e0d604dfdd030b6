/**
 * BUG(): an unrecoverable kernel error. Thrown, it unwinds the CPU; the harness
 * stops the machine and reports the CPU, the message and the seed. A module of
 * its own (no imports) so that the arena itself can raise one.
 */
export class KernelBug extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelBug";
  }
}
