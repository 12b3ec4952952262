/**
 * The HTML report in a real browser (issue #19 part 3): reports of three runs
 * — a passing built-in scenario, a failing expectation, an explorer
 * counterexample — are loaded in headless Chromium (Debian's
 * `/usr/bin/chromium`, driven by playwright-core); each must open with no
 * console error and show the lanes, the plots and (when the run failed) the
 * violation marker; a screenshot of each is saved. A report of a real run of ≥ 10⁴ events
 * must stay under 5 MB and open in under 2 s.
 *
 * Skips (with the reason in its name) only where no Chromium is installed.
 * `GPUSVM_DOCS_SCREENSHOT=1` also writes the counterexample's screenshot to
 * docs/report.png (the README's picture).
 */
import { Effect, Exit } from "effect"
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type Browser, chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadWord } from "../../src/cli/load.ts"
import { simulated } from "../../src/cli/machines.ts"
import { record, type Recorded } from "../../src/cli/report-html.ts"
import type { RunEvent } from "../../src/domain/RunEvent.ts"
import { decodeScenario, type Scenario } from "../../src/domain/Scenario.ts"
import * as ScenarioTarget from "../../src/explore/ScenarioTarget.ts"
import * as Assets from "../../src/report/Assets.ts"
import * as Html from "../../src/report/Html.ts"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..")
const CHROMIUM = "/usr/bin/chromium"
const OUT = join(tmpdir(), "gpusvm-report-test")
const hasChromium = existsSync(CHROMIUM)

/** A scenario whose GPU read expects what the CPU did not write: a failed expectation. */
const failing: Scenario = (() => {
  const exit = decodeScenario({
    name: "report-failing-expectation",
    description: "the GPU reads back 1 where the scenario expects 2",
    steps: [
      { op: "mmap", as: "a", length: "64K" },
      { op: "cpu-write", buf: "a", pattern: 1 },
      { op: "gpu-read", buf: "a", expect: 2 }
    ]
  })
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
})()

const load = (name: string) => Effect.runPromise(Effect.map(loadWord(name), (l) => l.scenario))
const run = (s: Scenario, o: Parameters<typeof record>[1] = {}) => Effect.runPromise(record(s, o))

/** The explorer's counterexample for kernel617-cve-2025-40336 under the 6.17 profile, replayed and recorded. */
const counterexample = async (): Promise<{ scenario: Scenario; run: Recorded }> => {
  const scenario = await load("kernel617-cve-2025-40336")
  const found = await Effect.runPromise(ScenarioTarget.explore(scenario, simulated, { budget: 200 }, { kernel: "6.17" }))
  const v = found.check.violation
  if (v === undefined) throw new Error("the explorer found no counterexample")
  const minimal = found.minimal ?? scenario
  return { scenario: minimal, run: await run(minimal, { schedule: v.schedule, kernel: "6.17" }) }
}

const write = (name: string, scenario: Scenario, r: Recorded): string => {
  mkdirSync(OUT, { recursive: true })
  const file = join(OUT, `${name}.html`)
  writeFileSync(file, Html.render({ result: r.result, events: r.events, scenarioText: JSON.stringify(scenario, null, 2), command: `test: ${name}` }, Assets.load()))
  return file
}

interface Opened {
  readonly errors: ReadonlyArray<string>
  readonly lanes: number
  readonly plots: number
  readonly marker: number
  readonly leading: number
  readonly openMs: number
}

let browser: Browser | undefined

/** The three views are there (lanes, four uPlot plots: counts, retries by reason, bytes, DMA mappings), no console error, and the marker iff the run failed. */
const expectViews = (o: Opened, lanes: number, failed: boolean): void => {
  expect(o.errors).toEqual([])
  expect(o.lanes).toBeGreaterThanOrEqual(lanes)
  expect(o.plots).toBe(4)
  expect(o.marker).toBe(failed ? 1 : 0)
  if (failed) expect(o.leading).toBeGreaterThan(0)
}

/** Opens `file` in a fresh page, waits until its script has drawn everything, screenshots it to `png`. */
const open = async (file: string, png: string): Promise<Opened> => {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } })
  const errors: Array<string> = []
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text())
  })
  page.on("pageerror", (e) => errors.push(e.message))
  // no network: every request but the file itself fails the test
  await page.route(/^(?!file:)/, (route) => {
    errors.push(`network request: ${route.request().url()}`)
    return route.abort()
  })
  const t0 = performance.now()
  await page.goto(`file://${file}`)
  await page.waitForSelector("body[data-ready='1']", { timeout: 10_000 })
  const openMs = performance.now() - t0
  const counts = await page.evaluate(() => ({
    lanes: document.querySelectorAll("#lanes .lane").length,
    plots: document.querySelectorAll("#plots .uplot canvas").length,
    marker: document.querySelectorAll("#violation-marker").length,
    leading: document.querySelectorAll(".leading-event").length
  }))
  await page.screenshot({ path: png, fullPage: true })
  await page.close()
  return { errors, openMs, ...counts }
}

describe.skipIf(!hasChromium)(`HTML report in headless Chromium (issue #19; needs capability: chromium at ${CHROMIUM})`, () => {
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] })
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
  })

  it("a passing built-in scenario (approx-once-malloc): lanes and plots, no violation marker, no console error", async () => {
    const s = await load("approx-once-malloc")
    const r = await run(s)
    expect(r.result.ok).toBe(true)
    expectViews(await open(write("passing", s, r), join(OUT, "passing.png")), 2, false)
  }, 60_000)

  it("a failed expectation: the violation marker and the events that led to it", async () => {
    const r = await run(failing)
    expect(r.result.ok).toBe(false)
    expectViews(await open(write("failing", failing, r), join(OUT, "failing.png")), 1, true)
  }, 60_000)

  it("an explorer counterexample (kernel617-cve-2025-40336 under 6.17, replayed): marker, lanes, plots", async () => {
    const { scenario, run: r } = await counterexample()
    expect(r.result.violations.map((v) => v.invariant)).toContain("dma-map-past-range")
    const png = join(OUT, "counterexample.png")
    expectViews(await open(write("counterexample", scenario, r), png), 2, true)
    if (process.env["GPUSVM_DOCS_SCREENSHOT"] === "1") {
      const page = await browser!.newPage({ viewport: { width: 1200, height: 1250 } })
      await page.goto(`file://${join(OUT, "counterexample.html")}`)
      await page.waitForSelector("body[data-ready='1']")
      await page.screenshot({ path: join(ROOT, "docs", "report.png"), fullPage: false })
      await page.close()
    }
  }, 120_000)

  it("a report of a 10^4-event run stays under 5 MB and opens in under 2 s", async () => {
    // a real recorded run: 1 200 first GPU touches of 4 KiB pages (each an op,
    // a fault, its get_pages and bind, a range, a sample: ≥ 10^4 events)
    const pages = 1200
    const steps: Array<object> = [{ op: "mmap", as: "a", length: pages * 4096 }]
    for (let i = 0; i < pages; i++) steps.push({ op: "gpu-read", buf: "a", offset: i * 4096, length: 4, expect: "zero" })
    const decoded = decodeScenario({ name: "large", policy: { migrate: "never" }, svm: { chunkSizes: [4096] }, steps })
    if (Exit.isFailure(decoded)) throw new Error(String(decoded.cause))
    const s = decoded.value
    const r = await run(s)
    const events: ReadonlyArray<RunEvent> = r.events
    const file = write("large", s, { result: r.result, events })
    const bytes = statSync(file).size
    expect(events.length).toBeGreaterThanOrEqual(10_000)
    expect(bytes).toBeLessThan(5 * 1024 * 1024)
    const o = await open(file, join(OUT, "large.png"))
    expectViews(o, 2, false)
    expect(o.openMs).toBeLessThan(2000)
    console.log(`10^4-event report: ${events.length} events, ${(bytes / 1024 / 1024).toFixed(2)} MB, opened in ${o.openMs.toFixed(0)} ms`)
  }, 120_000)
})
