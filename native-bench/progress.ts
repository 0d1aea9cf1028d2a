/** The progress line on a TTY: messages accepted, rate, errors; redrawn in place on stderr. */

const WIDTH = 30;

export class Progress {
  private constructor(
    private readonly total: number,
    private readonly durationMs: number | null,
    private readonly out: NodeJS.WriteStream,
  ) {}

  /** A progress line on stderr when it is a terminal, else null. */
  static forTty(total: number, durationMs: number | null): Progress | null {
    return process.stderr.isTTY ? new Progress(total, durationMs, process.stderr) : null;
  }

  update(done: number, errors: number, elapsedMs: number): void {
    let frac = Number.isFinite(this.total) && this.total > 0 ? done / this.total : 0;
    if (this.durationMs !== null) frac = Math.max(frac, elapsedMs / this.durationMs);
    frac = Math.min(1, frac);
    const bar = "#".repeat(Math.round(frac * WIDTH)).padEnd(WIDTH, ".");
    const rate = elapsedMs > 0 ? Math.round((done * 1000) / elapsedMs) : 0;
    this.out.write(
      `\r[${bar}] ${done.toLocaleString("en-US")} msgs  ${rate.toLocaleString("en-US")} msgs/s  ${errors} errors   `,
    );
  }

  finish(done: number, errors: number, elapsedMs: number): void {
    this.update(done, errors, elapsedMs);
    this.out.write("\n");
  }

  private deliveredLine = false;

  delivered(n: number, of: number): void {
    this.deliveredLine = true;
    this.out.write(`\rdelivered ${n.toLocaleString("en-US")} / ${of.toLocaleString("en-US")}   `);
  }

  /** Ends the "delivered" line, if one was drawn. */
  endDelivered(): void {
    if (this.deliveredLine) this.out.write("\n");
    this.deliveredLine = false;
  }
}
