/**
 * The notifier lock (kernel-semantics §6): a read/write lock where readers
 * share, a writer excludes everyone, and a waiting writer holds back new
 * readers (so faults cannot starve an invalidation).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as Lock from "../../src/internal/RwLock.ts"

describe("RwLock (the notifier lock and mmap lock) §6", () => {
  it.effect("§6 readers share; a writer waits for them and excludes new readers while it waits", () =>
    Effect.gen(function*() {
      const lock = yield* Lock.make
      const log: Array<string> = []
      const r1Go = yield* Deferred.make<void>()
      const r1 = yield* Effect.forkChild(lock.withRead(Effect.andThen(Effect.sync(() => log.push("r1 in")), Deferred.await(r1Go))))
      yield* Effect.yieldNow
      const r2 = yield* Effect.forkChild(lock.withRead(Effect.sync(() => log.push("r2 in"))))
      yield* Fiber.join(r2)
      assert.deepStrictEqual(log, ["r1 in", "r2 in"])
      const w = yield* Effect.forkChild(lock.withWrite(Effect.sync(() => log.push("w in"))))
      yield* Effect.yieldNow
      assert.strictEqual(lock.peek().waitingWriters, 1)
      const r3 = yield* Effect.forkChild(lock.withRead(Effect.sync(() => log.push("r3 in"))))
      yield* Effect.yieldNow
      assert.deepStrictEqual(log, ["r1 in", "r2 in"])
      yield* Deferred.succeed(r1Go, undefined)
      yield* Fiber.join(r1)
      yield* Fiber.join(w)
      yield* Fiber.join(r3)
      assert.deepStrictEqual(log, ["r1 in", "r2 in", "w in", "r3 in"])
      assert.deepStrictEqual(lock.peek(), { readers: 0, writer: false, waitingWriters: 0 })
    }))

  it.effect("§6 an interrupted waiting writer withdraws, and readers proceed", () =>
    Effect.gen(function*() {
      const lock = yield* Lock.make
      const hold = yield* Deferred.make<void>()
      const r1 = yield* Effect.forkChild(lock.withRead(Deferred.await(hold)))
      yield* Effect.yieldNow
      const w = yield* Effect.forkChild(lock.withWrite(Effect.void))
      yield* Effect.yieldNow
      assert.strictEqual(lock.peek().waitingWriters, 1)
      yield* Fiber.interrupt(w)
      assert.strictEqual(lock.peek().waitingWriters, 0)
      yield* lock.withRead(Effect.void)
      yield* Deferred.succeed(hold, undefined)
      yield* Fiber.join(r1)
      assert.deepStrictEqual(lock.peek(), { readers: 0, writer: false, waitingWriters: 0 })
    }))

  it.effect("§6 a failing or interrupted holder releases the lock", () =>
    Effect.gen(function*() {
      const lock = yield* Lock.make
      yield* Effect.exit(lock.withWrite(Effect.fail("boom")))
      yield* Effect.exit(lock.withRead(Effect.die("defect")))
      const f = yield* Effect.forkChild(lock.withRead(Effect.never))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(f)
      assert.deepStrictEqual(lock.peek(), { readers: 0, writer: false, waitingWriters: 0 })
    }))
})

describe("RwLock §6 property", () => {
  it.effect("§6 no reader overlaps a writer and writers never overlap, over 200 random mixes", () =>
    Effect.gen(function*() {
      for (let seed = 1; seed <= 200; seed++) {
        const lock = yield* Lock.make
        let readers = 0
        let writers = 0
        let bad = 0
        let s = seed
        const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296
        const section = (write: boolean) =>
          Effect.gen(function*() {
            if (write) writers++
            else readers++
            if (writers > 1 || (writers === 1 && readers > 0)) bad++
            const yields = Math.floor(next() * 3)
            for (let i = 0; i < yields; i++) yield* Effect.yieldNow
            if (writers > 1 || (writers === 1 && readers > 0)) bad++
            if (write) writers--
            else readers--
          })
        const worker = Effect.gen(function*() {
          for (let i = 0; i < 6; i++) {
            const write = next() < 0.3
            yield* (write ? lock.withWrite(section(true)) : lock.withRead(section(false)))
            if (next() < 0.5) yield* Effect.yieldNow
          }
        })
        yield* Effect.all([worker, worker, worker, worker], { concurrency: "unbounded", discard: true })
        assert.strictEqual(bad, 0, `seed ${seed}`)
        assert.deepStrictEqual(lock.peek(), { readers: 0, writer: false, waitingWriters: 0 })
      }
    }))
})
