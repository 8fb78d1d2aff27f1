/**
 * Bounded output for tool results: a buffer that keeps the head and the tail of a stream. (Programs run
 * through the one sandboxed runner, activities/sandbox/run.ts.)
 */

/** Bytes of output a tool result keeps (head and tail halves). */
export const OUTPUT_CAP_BYTES = 64 * 1024;

/** Keeps the first and last `cap / 2` bytes of a stream; the middle is counted, not stored. */
export class CappedBuffer {
  private head = Buffer.alloc(0);
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private omitted = 0;

  constructor(private readonly cap = OUTPUT_CAP_BYTES) {}

  push(chunk: Buffer): void {
    const half = Math.floor(this.cap / 2);
    if (this.head.length < half) {
      const take = chunk.subarray(0, half - this.head.length);
      this.head = Buffer.concat([this.head, take]);
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes > half) {
      const first = this.tail[0];
      if (!first) break;
      const excess = this.tailBytes - half;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailBytes -= first.length;
        this.omitted += first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailBytes -= excess;
        this.omitted += excess;
      }
    }
  }

  toString(): string {
    const tail = Buffer.concat(this.tail).toString('utf8');
    const gap = this.omitted > 0 ? `\n[… ${this.omitted} bytes omitted …]\n` : '';
    return this.head.toString('utf8') + gap + tail;
  }
}

/** Caps a string the same way as {@link CappedBuffer}. */
export function capText(text: string, cap = OUTPUT_CAP_BYTES): string {
  const b = new CappedBuffer(cap);
  b.push(Buffer.from(text, 'utf8'));
  return b.toString();
}
