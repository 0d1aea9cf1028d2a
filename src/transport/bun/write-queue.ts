/**
 * What Bun's socket.write() did not take. Bun writes what the kernel accepts and buffers nothing (ARCHITECTURE.md
 * platform facts), so every connection, inbound and outbound, keeps the rest here, in order, and pushes it on
 * `drain`. Never drops a byte; `queued` is the backpressure signal.
 */
type Writable = { write(bytes: Uint8Array): number };

export class WriteQueue {
  private chunks: Uint8Array[] = [];
  queued = 0;

  /** Write now if nothing is waiting, else (and for the part the kernel refused) queue. */
  send(sock: Writable, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.queued > 0) {
      this.chunks.push(bytes);
      this.queued += bytes.length;
      return;
    }
    const n = sock.write(bytes);
    if (n < bytes.length) {
      const rest = n > 0 ? bytes.subarray(n) : bytes;
      this.chunks.push(rest);
      this.queued += rest.length;
    }
  }

  /** On drain: push queued bytes until the kernel stops taking them. Returns true once nothing is left. */
  flush(sock: Writable): boolean {
    while (this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const n = sock.write(head);
      if (n <= 0) return false;
      this.queued -= n;
      if (n < head.length) {
        this.chunks[0] = head.subarray(n);
        return false;
      }
      this.chunks.shift();
    }
    return true;
  }

  clear(): void {
    this.chunks = [];
    this.queued = 0;
  }
}
