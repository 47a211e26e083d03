/**
 * A first-come, first-served line of waiting acquires for one key of one limiter, in one process.
 *
 * Only the head of the line asks the store; the others wait their turn. Without it, N waiters in
 * one process would all wake at the same instant and all ask the store, N - 1 of them in vain
 * (the herd that makes naive limiters collapse under contention). With it, each process sends one
 * request per opening, and waiters are served in arrival order.
 */
export class WaitLine {
  #tail: Promise<void> = Promise.resolve();
  #size = 0;

  /** Acquires in line, the head included. */
  get size(): number {
    return this.#size;
  }

  /**
   * Joins the line. `turn` resolves when every earlier place has left; `leave` must be called
   * exactly once, whether the turn came or the waiter gave up before it.
   */
  enter(): { turn: Promise<void>; leave: () => void } {
    const previous = this.#tail;
    let pass!: () => void;
    this.#tail = new Promise<void>((resolve) => {
      pass = resolve;
    });
    this.#size++;
    let left = false;
    return {
      turn: previous,
      leave: () => {
        if (left) return;
        left = true;
        this.#size--;
        // Pass the turn on only once our own turn has come: leaving early must not let the next
        // waiter overtake the ones still ahead of us.
        void previous.then(pass);
      },
    };
  }
}
