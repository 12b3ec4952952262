/**
 * The run event log (issue #19 part 1): what the recorder makes of a run's
 * spans and snapshots, that it does not change the run, and the CLI outputs
 * (`simulate --events/--html`, `report -o`, `explore --events`).
 */
import { Effect, Exit } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { loadWord } from "../../src/cli/load.ts"
import { simulated } from "../../src/cli/machines.ts"
import { record } from "../../src/cli/report-html.ts"
import { decodeEventLine, type RunEvent, toJsonl } from "../../src/domain/RunEvent.ts"
import { decodeScenario } from "../../src/domain/Scenario.ts"
import * as Runner from "../../src/programs/ScenarioRunner.ts"
import { leadingEvents, verdictOf } from "../../src/report/Analysis.ts"
import { gpusvm, show, tempDir } from "../cli/support.ts"

const load = (name: string) => Effect.runPromise(Effect.map(loadWord(name), (l) => l.scenario))
const kinds = (events: ReadonlyArray<RunEvent>) => new Set(events.map((e) => e.kind))
const sansDuration = ({ durationMs: _, ...rest }: { durationMs: number }) => rest

describe("run event log (issue #19)", () => {
  it("§10.1/§9 approx-once-malloc: a GPU fault (with its range), the migration to VRAM and its MIGRATE invalidation, the range turning VRAM, the CPU read's kernel page move back (migrate_to_ram)", async () => {
    const r = await Effect.runPromise(record(await load("approx-once-malloc")))
    const k = kinds(r.events)
    for (const want of ["op", "vma-created", "fault", "migration", "invalidation", "range-created", "notifier-created", "range-state", "page-move", "sample", "get-pages", "bind"]) {
      expect(k, want).toContain(want)
    }
    const fault = r.events.find((e) => e.kind === "fault")
    expect(fault).toMatchObject({ actor: "t0", step: "steps[2]", retries: 0 })
    expect(fault?.kind === "fault" && fault.range !== undefined).toBe(true)
    expect(r.events.find((e) => e.kind === "migration")).toMatchObject({ direction: "to_vram", bytes: 65536, actor: "t0" })
    // §4 get_pages then §6 the bind under the notifier lock, over the fault's range
    const gp = r.events.find((e) => e.kind === "get-pages")
    const bd = r.events.find((e) => e.kind === "bind")
    expect(gp !== undefined && bd !== undefined && gp.seq < bd.seq).toBe(true)
    if (fault?.kind === "fault" && fault.range !== undefined && bd?.kind === "bind") expect({ start: bd.start, end: bd.end }).toEqual(fault.range)
    expect(r.events.find((e) => e.kind === "invalidation" && e.event === "migrate")).toMatchObject({ owner: expect.any(String) })
    expect(r.events.find((e) => e.kind === "range-state" && e.state === "vram")).toBeDefined()
    expect(r.events.find((e) => e.kind === "page-move")).toMatchObject({ direction: "to_ram", bytes: 65536, step: "steps[4]" })
    // seq is the logical order, strictly increasing
    r.events.forEach((e, i) => i > 0 && expect(e.seq).toBeGreaterThan(r.events[i - 1]!.seq))
  })

  it("§11.5 a fault that retried says why: an injected DMA map failure is one EFAULT retry of that fault", async () => {
    const exit = decodeScenario({
      name: "why",
      policy: { migrate: "never" },
      machine: { inject: { dmaMapFail: 1 } },
      steps: [{ op: "mmap", as: "a", length: "64K" }, { op: "gpu-read", buf: "a", length: 16, expect: "zero" }]
    })
    if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
    const r = await Effect.runPromise(record(exit.value))
    const faults = r.events.filter((e) => e.kind === "fault")
    expect(faults.length).toBe(1)
    expect(faults[0]).toMatchObject({ retries: 1, why: { EFAULT: 1 } })
  })

  it("every event round-trips through the JSONL schema", async () => {
    const r = await Effect.runPromise(record(await load("approx-once-malloc")))
    const lines = toJsonl(r.events).trimEnd().split("\n")
    expect(lines.length).toBe(r.events.length)
    for (const line of lines) expect(Exit.isSuccess(decodeEventLine(line)), line).toBe(true)
    expect(Exit.isSuccess(decodeEventLine(JSON.stringify({ ...r.events[0], kind: "nope" })))).toBe(false)
  })

  it("§10.2 the garbage collector's passes are on the gc-worker actor", async () => {
    const r = await Effect.runPromise(record(await load("approx-many-malloc")))
    const gc = r.events.filter((e) => e.kind === "gc")
    expect(gc.length).toBeGreaterThan(0)
    for (const e of gc) expect(e.actor).toBe("gc-worker")
  })

  it("recording does not change the run: a seeded two-thread run gives the same result recorded and not", async () => {
    const s = await load("threads-fault-vs-unmap")
    for (const seed of [1, 7]) {
      const plain = await Effect.runPromise(Runner.run(s, simulated, { seed }))
      const recorded = await Effect.runPromise(record(s, { seed }))
      expect(sansDuration(recorded.result)).toEqual(sansDuration(plain))
      expect(new Set(recorded.events.map((e) => e.actor))).toContain("t1")
    }
  })

  it("a failed expectation is the verdict, on its thread, and the events of its step led to it", async () => {
    const s = await load("approx-once-malloc")
    const bad = { ...s, threads: [{ ...s.threads[0]!, steps: s.threads[0]!.steps.map((st, i) => (i === 2 ? { ...st, expect: 9 } : st)) }] }
    const r = await Effect.runPromise(record(bad as typeof s))
    const v = verdictOf(r.events)
    expect(v).toMatchObject({ kind: "failure", actor: "t0", step: "steps[2]" })
    const lead = leadingEvents(r.events)
    expect(lead.length).toBeGreaterThan(0)
    const fault = r.events.find((e) => e.kind === "fault")!
    expect(lead).toContain(fault.seq)
  })

  it("CLI: simulate --events/--html, report -o, explore --events write their files", async () => {
    const t = tempDir("gpusvm-report-")
    try {
      const ev = join(t.dir, "e.jsonl"), html = join(t.dir, "s.html"), rep = join(t.dir, "r.html"), ex = join(t.dir, "x.jsonl")
      const [sim, report, explore] = await Promise.all([
        gpusvm(["simulate", "approx-once-malloc", "--events", ev, "--html", html], 60_000),
        gpusvm(["report", "approx-once-malloc", "-o", rep], 60_000),
        gpusvm(["explore", "kernel617-cve-2025-40336", "--kernel", "6.17", "--budget", "200", "--events", ex], 120_000)
      ])
      expect(sim.status, show(sim)).toBe(0)
      expect(report.status, show(report)).toBe(0)
      expect(explore.status, show(explore)).toBe(1)
      const lines = readFileSync(ev, "utf8").trimEnd().split("\n")
      expect(lines.every((l) => Exit.isSuccess(decodeEventLine(l)))).toBe(true)
      for (const f of [html, rep]) {
        const text = readFileSync(f, "utf8")
        expect(text).toContain("uPlot")
        expect(text).not.toMatch(/<script[^>]+src=|<link[^>]+href=/)
      }
      const cx = readFileSync(ex, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l) as RunEvent)
      expect(cx.some((e) => e.kind === "violation" && e.what === "dma-map-past-range")).toBe(true)
      const bad = await gpusvm(["simulate", "approx-once-malloc", "approx-fault", "--events", ev])
      expect(bad.status, show(bad)).toBe(2)
    } finally {
      t.remove()
    }
  }, 180_000)
})
