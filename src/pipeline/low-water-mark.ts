/**
 * The invariant kept here: **the stored cursor is a low-water mark**. Every seq at or below it
 * has its effects committed. Events finish out of seq order (each repo's events are processed in
 * order, different repos independently), so the mark is the highest seq below which every event
 * has finished; an event that is parked (its identity cannot be resolved, say) holds the mark back
 * until it finishes or its repo is handed to a resync. checkpoint.ts commits it with the effects.
 */

/** One event whose effects are not pushed yet. */
export interface Mark {
  seq: number
  done: boolean
}

/** Seqs in reading order; finished ones at the front are folded into the mark. */
export class LowWaterMark {
  private entries: Mark[] = []
  private head = 0
  /** Highest seq with every seq at or below it finished; null before the first. */
  value: number | null = null

  get inFlight(): number {
    return this.entries.length - this.head
  }

  /** A seq with nothing left to do. */
  seen(seq: number): void {
    if (this.head === this.entries.length) {
      this.value = seq
      return
    }
    // A run of finished seqs at the tail needs only its last one.
    const tail = this.entries[this.entries.length - 1] as Mark
    if (tail.done && this.entries.length - 1 > this.head) tail.seq = seq
    else this.entries.push({ seq, done: true })
  }

  /** A seq whose effects will come later. */
  open(seq: number): Mark {
    const mark = { seq, done: false }
    this.entries.push(mark)
    return mark
  }

  close(mark: Mark): void {
    mark.done = true
    while (this.head < this.entries.length && (this.entries[this.head] as Mark).done) {
      this.value = (this.entries[this.head] as Mark).seq
      this.head++
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
  }

  reset(value: number | null): void {
    this.entries = []
    this.head = 0
    this.value = value
  }
}
