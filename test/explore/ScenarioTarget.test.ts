/**
 * The explorer on scenarios (issue #12): the built-in explorer configs are
 * complete with no violation (a CI-sized preemption bound here; `npm run
 * explore:builtins` runs K = 2), a racy scenario's violation is found, shrunk
 * (fewer preemptions, fewer steps) and replayed byte for byte, a barrier
 * deadlock is found by the scheduler, and the CLI's `explore` / `simulate
 * --schedule` / `--workers` behave as documented.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { loadWord } from "../../src/cli/load.ts"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario, type Scenario } from "../../src/domain/Scenario.ts"
import * as ScenarioTarget from "../../src/explore/ScenarioTarget.ts"
import { gpusvm, show, tempDir } from "../cli/support.ts"

const builtin = (name: string) => Effect.map(Effect.orDie(loadWord(name)), (l) => l.scenario)

/** A scenario whose expectation holds in one order only: the GPU reads while the CPU overwrites. */
const racyFile = {
  name: "racy-read",
  description: "a GPU read races a CPU write of the same page; the read expects the old bytes",
  policy: { migrate: "never" },
  threads: [
    {
      steps: [
        { op: "mmap", as: "a", length: "64K", align: "64K" },
        { op: "cpu-write", buf: "a", pattern: 1 },
        { op: "barrier", name: "go" },
        { op: "gpu-read", buf: "a", offset: 0, length: "4K", expect: 1 },
        { op: "barrier", name: "end" }
      ]
    },
    {
      steps: [
        { op: "barrier", name: "go" },
        { op: "cpu-write", buf: "a", offset: 0, length: "4K", pattern: 2 },
        { op: "barrier", name: "end" }
      ]
    }
  ]
}

const decode = (file: unknown): Scenario => {
  const r = decodeScenario(file)
  if (r._tag !== "Success") throw new Error(`bad test scenario: ${String(r.cause)}`)
  return r.value
}

describe("Explore on scenarios (issue #12)", () => {
  for (const name of ["explore-fault-vs-munmap", "explore-fault-vs-dontneed", "explore-fault-vs-cpu-touch-devmem", "explore-fault-vs-evict", "explore-prefetch-vs-dontneed"]) {
    it.effect(`built-in ${name}: complete at K = 1 with no violation`, () =>
      Effect.gen(function*() {
        const s = yield* builtin(name)
        const r = yield* ScenarioTarget.explore(s, simulated, { preemptions: 1 })
        assert.isUndefined(r.check.violation, r.check.violation?.detail)
        expect(r.check.complete).toBe(true)
        expect(r.check.schedules).toBeGreaterThan(10)
        expect(r.check.terminalStates).toBeGreaterThan(1)
      }), 120_000)
  }

  it.effect("a racy expectation is found, shrunk to fewer steps and 1 preemption, and replays byte for byte", () =>
    Effect.gen(function*() {
      const s = decode(racyFile)
      const r = yield* ScenarioTarget.explore(s, simulated, { preemptions: 2 })
      const v = r.check.violation
      assert.isDefined(v)
      expect(v!.kind).toBe("expectation")
      expect(v!.detail).toContain("gpu-read of a")
      expect(v!.preemptions).toBeLessThanOrEqual(1)
      // the barriers are not needed to show the race: step shrinking drops them
      const steps = (x: Scenario) => x.threads.reduce((a, t) => a + t.steps.length, 0)
      expect(steps(r.minimal!)).toBeLessThan(steps(s))
      // replaying the schedule on the minimal scenario gives the failing result, twice identically
      const one = yield* ScenarioTarget.replay(r.minimal!, simulated, v!.schedule)
      const two = yield* ScenarioTarget.replay(r.minimal!, simulated, v!.schedule)
      expect(one.result.ok).toBe(false)
      expect(JSON.stringify(two.result)).toBe(JSON.stringify(one.result))
      expect(one.record.trace).toEqual(v!.trace)
    }), 60_000)

  it.effect("barriers taken in opposite orders are a deadlock found at once, naming each thread's barrier", () =>
    Effect.gen(function*() {
      const s = decode({
        name: "barrier-deadlock",
        threads: [
          { steps: [{ op: "barrier", name: "x" }, { op: "barrier", name: "y" }] },
          { steps: [{ op: "barrier", name: "y" }, { op: "barrier", name: "x" }] }
        ]
      })
      const started = Date.now()
      const r = yield* ScenarioTarget.explore(s, simulated, { preemptions: 0, shrinkSteps: false })
      expect(Date.now() - started).toBeLessThan(10_000)
      expect(r.check.violation?.kind).toBe("deadlock")
      // the runner sees it first (threads block only at barriers); the scheduler would too
      expect(r.check.violation?.detail).toContain("threads[0].steps[0] at barrier x")
      expect(r.check.violation?.detail).toContain("threads[1].steps[0] at barrier y")
      const replayed = yield* ScenarioTarget.replay(s, simulated, r.check.violation!.schedule)
      expect(replayed.result.violations[0]?.invariant).toBe("deadlock")
    }), 60_000)

  it.effect("§11.16 the explorer finds each kernel 6.17 bug on its kernel617-* scenario, and nothing under the default 7.0", () =>
    Effect.gen(function*() {
      const cases = [
        ["kernel617-unbounded-retry", "livelock"],
        ["kernel617-cve-2025-40336", "dma-map-past-range"],
        ["kernel617-evict-mmref-leak", "mm-ref-leak"],
        ["kernel617-readonly-bidirectional", "readonly-mapped-bidirectional"]
      ] as const
      for (const [name, kind] of cases) {
        const s = yield* builtin(name)
        const bad = yield* ScenarioTarget.explore(s, simulated, { preemptions: 0, shrinkSteps: false }, { kernel: "6.17" })
        expect({ name, kind: bad.check.violation?.kind }).toEqual({ name, kind })
        const good = yield* ScenarioTarget.explore(s, simulated, { preemptions: 0 })
        expect({ name, violation: good.check.violation?.detail }).toEqual({ name, violation: undefined })
        expect(good.check.complete).toBe(true)
      }
    }), 120_000)

  it.effect("a schedule string that does not parse is a typed error", () =>
    Effect.gen(function*() {
      const s = decode(racyFile)
      const e = yield* Effect.flip(ScenarioTarget.replay(s, simulated, "s1:banana"))
      expect(e._tag).toBe("InvalidSchedule")
    }))
})

describe.concurrent("gpusvm explore (spawned, issue #12)", { timeout: 240_000 }, () => {
  it("explore NAME exits 0 and says the bounded space was complete", async () => {
    const r = await gpusvm(["explore", "explore-fault-vs-munmap", "--preemptions", "1"], 120_000)
    assert.strictEqual(r.status, 0, show(r))
    expect(r.stdout).toContain("complete: every schedule in the bounded space was run")
    expect(r.stdout).toMatch(/\d+ schedules/)
  })

  it("explore FILE with a race exits 1, prints the minimal trace and a schedule that simulate --schedule replays byte for byte", async () => {
    const t = tempDir()
    try {
      const file = t.write("racy.json", { ...racyFile, threads: racyFile.threads.map((th) => ({ steps: th.steps.filter((x) => x.op !== "barrier") })) })
      const r = await gpusvm(["explore", file, "--json"], 120_000)
      assert.strictEqual(r.status, 1, show(r))
      const out = JSON.parse(r.stdout) as { violation: { schedule: string; kind: string; found: { schedule: string } } }
      expect(out.violation.kind).toBe("expectation")
      expect(out.violation.schedule).toMatch(/^s1:/)
      const human = await gpusvm(["explore", file], 120_000)
      assert.strictEqual(human.status, 1, show(human))
      expect(human.stdout.split("\n")[0]).toMatch(/^VIOLATION in racy-read: expectation/)
      expect(human.stdout).toContain("schedule: s1:")
      expect(human.stdout).toMatch(/replay( the first-found run)?: gpusvm simulate /)
      // the first-found schedule replays the failure on the file as given
      const found = await gpusvm(["simulate", file, "--schedule", out.violation.found.schedule, "--json"])
      assert.strictEqual(found.status, 1, show(found))
      const a = await gpusvm(["simulate", file, "--schedule", out.violation.schedule, "--json"])
      const b = await gpusvm(["simulate", file, "--schedule", out.violation.schedule, "--json"])
      assert.strictEqual(a.status, 1, show(a))
      expect(a.stdout).toBe(b.stdout)
      expect(JSON.parse(a.stdout).ok).toBe(false)
    } finally {
      t.remove()
    }
  })

  it("--workers 2 finds the same counts as one thread", async () => {
    const one = await gpusvm(["explore", "explore-fault-vs-munmap", "--preemptions", "1", "--json"], 200_000)
    const two = await gpusvm(["explore", "explore-fault-vs-munmap", "--preemptions", "1", "--workers", "2", "--json"], 200_000)
    assert.strictEqual(one.status, 0, show(one))
    assert.strictEqual(two.status, 0, show(two))
    const pick = (s: string) => {
      const j = JSON.parse(s) as { schedules: number; pruned: number; complete: boolean; terminalStates: number; longestRun: number }
      return { schedules: j.schedules, pruned: j.pruned, complete: j.complete, terminalStates: j.terminalStates, longestRun: j.longestRun }
    }
    expect(pick(two.stdout)).toEqual(pick(one.stdout))
  })

  it("bad input exits 2 with one line: unknown strategy, bad bound, bad schedule, --schedule on the native machine", async () => {
    for (
      const args of [
        ["explore", "explore-fault-vs-munmap", "--strategy", "bfs"],
        ["explore", "explore-fault-vs-munmap", "--preemptions", "-1"],
        ["explore", "no-such-scenario"],
        ["simulate", "explore-fault-vs-munmap", "--schedule", "s7:0"],
        ["simulate", "explore-fault-vs-munmap", "--schedule", "s1:0", "--machine", "native"],
        ["simulate", "explore-fault-vs-munmap", "explore-fault-vs-evict", "--schedule", "s1:0"]
      ]
    ) {
      const r = await gpusvm(args)
      assert.strictEqual(r.status, 2, `${args.join(" ")}\n${show(r)}`)
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
    }
  })
})
