/**
 * The worker pool of `--workers N` (src/cli/pool.ts, issue #17 part 5): every
 * item gets a reply, in the items' order; a worker thread that exits, a
 * handler that dies, a reply that cannot cross the thread boundary and a
 * worker that never answers each become that item's `lost` reply with the
 * reason, and the pool goes on with a fresh worker instead of hanging.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Worker } from "node:worker_threads"
import { runPool } from "../../src/cli/pool.ts"

const spawn = (id: number) => new Worker(new URL("./poolWorker.ts", import.meta.url), { workerData: id })

describe("worker pool (#17 part 5)", () => {
  it.live("replies in order; a crash, a defect, an unpostable reply and a hang are lost replies with the reason, never a lost item", () =>
    Effect.gen(function*() {
      const items = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
      const inOrder: Array<number> = []
      const replies = yield* runPool<number, number | string>({
        items,
        workers: 2,
        spawn,
        order: [...items.keys()].reverse(),
        lost: (n, reason) => `lost ${n}: ${reason}`,
        itemTimeoutMs: 1_500,
        onInOrder: (i) => Effect.sync(() => void inOrder.push(i))
      })
      assert.deepStrictEqual(inOrder, [...items.keys()])
      assert.strictEqual(replies.length, items.length)
      for (const n of [1, 2, 4, 6, 8, 10]) assert.strictEqual(replies[n - 1], n * n)
      assert.match(String(replies[2]), /^lost 3: its worker thread ended: .*exited with code: 3/)
      assert.match(String(replies[4]), /^lost 5: .*five is a defect/)
      assert.match(String(replies[6]), /^lost 7: its reply could not be posted/)
      assert.match(String(replies[8]), /^lost 9: no reply within 2 s: its worker thread was stopped/)
    }), 30_000)
})
