/**
 * Observability through the command line (design.md §7, scenarios.md CLI
 * contract): `ScenarioResult.metrics` read from the driver's metric registry
 * equal what the hand-kept counters gave, `--otlp URL` posts OTLP/HTTP JSON
 * traces to a receiver this test starts, `--trace FILE` writes OTLP JSON.
 * Every run is a spawned `gpusvm` process.
 */
import { assert, describe, it } from "@effect/vitest"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import { existsSync, readFileSync } from "node:fs"
import { afterAll } from "vitest"
import { gpusvm, show, tempDir } from "./support.ts"

const tmp = tempDir("gpusvm-trace-")
afterAll(() => tmp.remove())

const noEvents = { "protection-vma": 0, "protection-page": 0, "soft-dirty": 0, release: 0, exclusive: 0 }
const retries = (r: Partial<Record<"EAGAIN" | "EBUSY" | "EOPNOTSUPP" | "EFAULT" | "EPERM", number>>) => ({
  EAGAIN: 0,
  EBUSY: 0,
  EOPNOTSUPP: 0,
  EFAULT: 0,
  EPERM: 0,
  ...r
})

/** `metrics` of built-in scenarios as main (667e3b5) printed them, from its hand-kept driver counters. */
const RECORDED: Record<string, unknown> = {
  "approx-evict-malloc": {
    faults: 24, faultRetries: retries({}), rangesCreated: 12, rangesRemoved: 0, notifiersCreated: 1, notifiersRemoved: 0,
    invalidations: { unmap: 0, clear: 0, migrate: 40, ...noEvents }, bytesToVram: 25165824, bytesToRam: 33554432, evictions: 8,
    gcRuns: 0, dmaMappingsLive: 0, deviceBytesLive: 16777216
  },
  "inject-dma-map-fail": {
    faults: 1, faultRetries: retries({ EFAULT: 2 }), rangesCreated: 1, rangesRemoved: 0, notifiersCreated: 1, notifiersRemoved: 0,
    invalidations: { unmap: 0, clear: 0, migrate: 0, ...noEvents }, bytesToVram: 0, bytesToRam: 0, evictions: 0, gcRuns: 0,
    dmaMappingsLive: 1, deviceBytesLive: 0
  },
  "approx-many-free": {
    faults: 512, faultRetries: retries({}), rangesCreated: 512, rangesRemoved: 496, notifiersCreated: 32, notifiersRemoved: 31,
    invalidations: { unmap: 32, clear: 0, migrate: 0, ...noEvents }, bytesToVram: 0, bytesToRam: 0, evictions: 0, gcRuns: 47,
    dmaMappingsLive: 0, deviceBytesLive: 0
  },
  "mmap-remap-ro": {
    faults: 51, faultRetries: retries({ EOPNOTSUPP: 1 }), rangesCreated: 49, rangesRemoved: 1, notifiersCreated: 2, notifiersRemoved: 1,
    invalidations: { unmap: 1, clear: 0, migrate: 4, ...noEvents, "protection-vma": 1 }, bytesToVram: 2097152, bytesToRam: 2097152,
    evictions: 0, gcRuns: 1, dmaMappingsLive: 514, deviceBytesLive: 0
  },
  "partial-mprotect-ro-gpu-write": {
    faults: 34, faultRetries: retries({ EPERM: 1 }), rangesCreated: 33, rangesRemoved: 1, notifiersCreated: 2, notifiersRemoved: 1,
    invalidations: { unmap: 0, clear: 0, migrate: 65, ...noEvents, "protection-vma": 1 }, bytesToVram: 4128768, bytesToRam: 4128768,
    evictions: 0, gcRuns: 0, dmaMappingsLive: 16, deviceBytesLive: 0
  }
}
const NAMES = Object.keys(RECORDED)

/**
 * The metrics of each scenario of a `--json` run. `gcRuns` is kept only as
 * "ran / did not run": how many passes the collector worker makes depends on
 * when the runtime lets its fiber run beside the scenario's (an Effect
 * scheduling detail, §11.2), not on what the driver counted; every other
 * counter is deterministic and compared exactly.
 */
const metricsOf = (stdout: string): Record<string, unknown> =>
  Object.fromEntries(stdout.trim().split("\n").map((l) => {
    const r = JSON.parse(l) as { scenario: string; metrics: { gcRuns: number } }
    return [r.scenario, { ...r.metrics, gcRuns: r.metrics.gcRuns > 0 }]
  }))

const RECORDED_SHAPE = Object.fromEntries(Object.entries(RECORDED).map(([k, m]) => [k, { ...(m as object), gcRuns: (m as { gcRuns: number }).gcRuns > 0 }]))

interface OtlpSpan {
  readonly name: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>
}
interface TracesData {
  readonly resourceSpans: ReadonlyArray<{ readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<OtlpSpan> }> }>
}
const spansOf = (d: TracesData): Array<OtlpSpan> => d.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans))

describe("gpusvm simulate: metrics from the registry, traces over OTLP (spawned)", { concurrent: true }, () => {
  it("design §7 ScenarioResult.metrics read from the metric registry equal main's hand-kept counters, with or without a trace", async () => {
    const plain = await gpusvm(["simulate", "--json", ...NAMES], 60_000)
    assert.strictEqual(plain.status, 0, show(plain))
    assert.deepStrictEqual(metricsOf(plain.stdout), RECORDED_SHAPE)
    const traced = await gpusvm(["simulate", "--json", "--trace", tmp.write("m.json", ""), ...NAMES], 60_000)
    assert.strictEqual(traced.status, 0, show(traced))
    assert.deepStrictEqual(metricsOf(traced.stdout), RECORDED_SHAPE)
  }, 60_000)

  it("design §7 --trace FILE writes one parseable OTLP JSON TracesData with the driver's spans", async () => {
    const file = tmp.write("trace.json", "")
    const r = await gpusvm(["simulate", "--trace", file, "approx-once-malloc", "approx-many-free"], 60_000)
    assert.strictEqual(r.status, 0, show(r))
    assert.include(r.stdout, "2 passed, 0 failed")
    const data = JSON.parse(readFileSync(file, "utf8")) as TracesData
    const spans = spansOf(data)
    const names = new Set(spans.map((s) => s.name))
    for (const n of ["gpusvm.simulate", "gpusvm.fault", "gpusvm.invalidate", "gpusvm.gc", "gpusvm.step.mmap", "gpusvm.step.gpu-read"]) assert.isTrue(names.has(n), `no ${n} in ${[...names].join(", ")}`)
    // approx-once-malloc 1 + approx-many-free 512 faults, one span each
    assert.strictEqual(spans.filter((s) => s.name === "gpusvm.fault").length, 513)
    const fault = spans.find((s) => s.name === "gpusvm.fault")!
    assert.deepStrictEqual(fault.attributes.map((a) => a.key).sort(), ["gpusvm.addr", "gpusvm.atomic", "gpusvm.retries", "gpusvm.write"])
  }, 60_000)

  it("design §7 --otlp URL posts OTLP/HTTP JSON traces with gpusvm.fault spans to a local receiver", async () => {
    const bodies: Array<{ readonly url: string | undefined; readonly type: string | undefined; readonly body: string }> = []
    const server = createServer((req: IncomingMessage, res) => {
      let body = ""
      req.setEncoding("utf8").on("data", (d: string) => {
        body += d
      }).on("end", () => {
        bodies.push({ url: req.url, type: req.headers["content-type"], body })
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const { port } = server.address() as AddressInfo
      const r = await gpusvm(["simulate", "--otlp", `http://127.0.0.1:${port}/v1/traces`, "approx-once-malloc", "approx-fault"], 60_000)
      assert.strictEqual(r.status, 0, show(r))
      assert.isAbove(bodies.length, 0, "no OTLP request received")
      for (const b of bodies) {
        assert.strictEqual(b.url, "/v1/traces")
        assert.include(b.type ?? "", "application/json")
      }
      const spans = bodies.flatMap((b) => spansOf(JSON.parse(b.body) as TracesData))
      const names = new Set(spans.map((s) => s.name))
      assert.isTrue(names.has("gpusvm.fault"), [...names].join(", "))
      assert.isTrue(names.has("gpusvm.simulate"), [...names].join(", "))
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }, 60_000)

  it("design §7 --otlp with a URL that does not parse, or --trace into a missing directory, is bad input (exit 2, nothing run)", async () => {
    const url = await gpusvm(["simulate", "--otlp", "not a url", "approx-once-malloc"])
    assert.strictEqual(url.status, 2, show(url))
    assert.include(url.stderr, "--otlp")
    assert.notInclude(url.stdout, "passed")
    const missing = `${tmp.dir}/no/such/dir/trace.json`
    const file = await gpusvm(["simulate", "--trace", missing, "approx-once-malloc"])
    assert.strictEqual(file.status, 2, show(file))
    assert.include(file.stderr, "--trace")
    assert.isFalse(existsSync(missing))
  }, 60_000)

  it("design §7 --otlp to a receiver that is not there still finishes the run (exit 0, export bounded)", async () => {
    const r = await gpusvm(["simulate", "--otlp", "http://127.0.0.1:9/v1/traces", "approx-once-malloc"], 60_000)
    assert.strictEqual(r.status, 0, show(r))
    assert.include(r.stdout, "1 passed, 0 failed")
  }, 60_000)
})
