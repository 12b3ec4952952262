/**
 * The `gpusvm` command as a user runs it: a spawned Node process on
 * `src/cli/main.ts`. Covers the contract of scenarios.md: `--json` results
 * decode with the result schema, `--version`, `scenarios`, exit status 2 with
 * a one-line message naming the file and JSON path for every class of bad
 * input (and nothing run), `--machine native`, exit 1 naming the step and the first differing byte
 * for a failed expectation, and the whole built-in set (its wall time is a
 * bench row, `npm run bench`: timing asserts do not belong in tests).
 */
import { assert, describe, it } from "@effect/vitest"
import { Exit } from "effect"
import { afterAll } from "vitest"
import { chmodSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { VERSION } from "../../src/index.ts"
import { describeIssue } from "../../src/domain/Scenario.ts"
import { decodeScenarioResult, type ScenarioResult } from "../../src/domain/ScenarioResult.ts"
import { builtinNames, gpusvm, SCENARIOS, show, tempDir } from "./support.ts"

const NAMES = builtinNames()
const tmp = tempDir()
afterAll(() => tmp.remove())

/** Decodes every stdout line of a `--json` run with the result schema. */
const decodeLines = (stdout: string): Array<ScenarioResult> =>
  stdout.trim().split("\n").map((line, i) => {
    const exit = decodeScenarioResult(JSON.parse(line))
    if (Exit.isSuccess(exit)) return exit.value
    const reason = exit.cause.reasons[0]
    const detail = reason?._tag === "Fail" ? describeIssue(reason.error.issue).map((x) => `${x.path}: ${x.reason}`).join("; ") : String(exit.cause)
    return assert.fail(`stdout line ${i} does not decode as a result: ${detail}\n${line.slice(0, 500)}`)
  })

const valid = (name: string, steps: ReadonlyArray<object>) => ({ name, steps })

// First and alone in this file (the other groups run concurrently after it).
describe("gpusvm simulate, every built-in (spawned)", () => {
  it("simulate with no arguments runs every built-in scenario and exits 0 (its time: bench row \"gpusvm simulate, every built-in\")", async () => {
    const r = await gpusvm(["simulate"], 60_000)
    assert.strictEqual(r.status, 0, show(r))
    assert.include(r.stdout, `${NAMES.length} passed, 0 failed`, show(r))
    for (const name of NAMES) assert.match(r.stdout, new RegExp(`^${name}\\s+ok\\s`, "m"), `${name} missing from the table`)
  }, 70_000)
})

describe.concurrent("gpusvm (spawned)", { timeout: 30_000 }, () => {
  it("Node runs TypeScript here (the tests spawn src/cli/main.ts directly)", async () => {
    const major = Number(process.versions.node.split(".")[0])
    assert.isAtLeast(major, 22, `process.execPath ${process.execPath} is Node ${process.versions.node}; run the tests with npx vitest (Node 22)`)
  })

  it("--version prints the package version", async () => {
    const r = await gpusvm(["--version"])
    assert.strictEqual(r.status, 0, show(r))
    assert.include(r.stdout, VERSION, show(r))
    const pkg = JSON.parse(readFileSync(join(SCENARIOS, "..", "package.json"), "utf8"))
    assert.strictEqual(VERSION, pkg.version)
  })

  it("scenarios lists every built-in scenario with its description, one line each", async () => {
    const r = await gpusvm(["scenarios"])
    assert.strictEqual(r.status, 0, show(r))
    const lines = r.stdout.trim().split("\n")
    assert.strictEqual(lines.length, NAMES.length, show(r))
    for (const name of NAMES) {
      const description = JSON.parse(readFileSync(join(SCENARIOS, `${name}.json`), "utf8")).description as string
      const line = lines.find((l) => l.split(/\s+/)[0] === name)
      assert.isDefined(line, `gpusvm scenarios does not list ${name}\n${r.stdout}`)
      assert.include(line!, description, `the line of ${name} lacks its description`)
    }
  })

  it("simulate --json prints one result per scenario that decodes with the result schema", async () => {
    const file = tmp.write("json-ok.json", {
      name: "json-ok",
      description: "a file given by path",
      threads: [
        { steps: [{ op: "mmap", as: "a", length: "64K" }, { op: "cpu-write", buf: "a", pattern: 4 }, { op: "barrier", name: "w" }] },
        { steps: [{ op: "barrier", name: "w" }, { op: "gpu-read", buf: "a", expect: 4 }] }
      ]
    })
    const r = await gpusvm(["simulate", "approx-once-malloc", "approx-partial-munmap-cpu-fault", file, "--json", "--seed", "3"])
    assert.strictEqual(r.status, 0, show(r))
    const results = decodeLines(r.stdout)
    assert.deepStrictEqual(results.map((x) => x.scenario), ["approx-once-malloc", "approx-partial-munmap-cpu-fault", "json-ok"])
    for (const x of results) {
      assert.isTrue(x.ok, `${x.scenario}: ${JSON.stringify(x.failures)} ${JSON.stringify(x.violations)}`)
      assert.isAbove(x.metrics.faults, 0, `${x.scenario}: the GPU must have faulted`)
      assert.strictEqual(x.metrics.dmaMappingsLive >= 0, true)
    }
    // partial munmap of a GPU-touched range: an UNMAP invalidation was seen
    assert.isAbove(results[1]!.metrics.invalidations.unmap, 0)
  })

  it("--machine native runs a scenario, or (on a host without the capabilities) is bad input naming what is missing", async () => {
    const r = await gpusvm(["simulate", "approx-once-malloc", "--machine", "native", "--json"], 60_000)
    if (r.status === 2) {
      assert.strictEqual(r.stdout, "", show(r))
      assert.match(r.stderr.trim(), /^gpusvm: --machine native: [^\n]+$/, show(r))
      return
    }
    assert.strictEqual(r.status, 0, show(r))
    const [result] = decodeLines(r.stdout)
    assert.strictEqual(result!.scenario, "approx-once-malloc")
    assert.isTrue(result!.ok, `${JSON.stringify(result!.failures)} ${JSON.stringify(result!.violations)}`)
  }, 60_000)

  it("a failed expectation exits 1 and names the step and the first differing byte", async () => {
    const file = tmp.write("mismatch.json", valid("mismatch", [
      { op: "mmap", as: "a", length: "64K" },
      { op: "cpu-write", buf: "a", pattern: 2 },
      { op: "gpu-write", buf: "a", offset: 300, length: 10, pattern: 3 },
      { op: "cpu-read", buf: "a", expect: 2 },
      { op: "gpu-read", buf: "a", offset: "4K", expect: 3 }
    ]))
    const human = await gpusvm(["simulate", file])
    assert.strictEqual(human.status, 1, show(human))
    assert.match(human.stdout, /FAIL mismatch steps\[3\]: .*offset 300\b/, show(human))
    assert.match(human.stdout, /FAIL mismatch steps\[4\]: .*offset 4096\b/, show(human))

    const json = await gpusvm(["simulate", file, "--json"])
    assert.strictEqual(json.status, 1, show(json))
    const [result] = decodeLines(json.stdout)
    assert.isFalse(result!.ok)
    assert.deepStrictEqual(result!.failures.map((f) => f.step), ["steps[3]", "steps[4]"])
    assert.include(result!.failures[0]!.detail, "offset 300 ")
    // byte 300 holds pattern 3: (3 + 300) % 256 = 47, where pattern 2 wants 46
    assert.include(result!.failures[0]!.detail, "is 47, expected 46")
  })

  it("a failure in a second thread is named threads[1].steps[i] (also an expected error that did not happen); other scenarios still run", async () => {
    const file = tmp.write("mismatch-threads.json", {
      name: "mismatch-threads",
      threads: [
        { steps: [{ op: "mmap", as: "a", length: "64K" }, { op: "gpu-write", buf: "a", pattern: 9 }, { op: "barrier", name: "b" }] },
        {
          steps: [
            { op: "barrier", name: "b" },
            { op: "cpu-read", buf: "a", offset: "8K", expect: 9 },
            { op: "cpu-read", buf: "a", expect: "zero" },
            // an expected error that does not happen is a failure too
            { op: "expect-error", step: { op: "gpu-read", buf: "a", expect: 9 }, tag: "GpuFaultError" }
          ]
        }
      ]
    })
    const r = await gpusvm(["simulate", "approx-once-malloc", file, "--json"])
    assert.strictEqual(r.status, 1, show(r))
    const [first, second] = decodeLines(r.stdout)
    assert.isTrue(first!.ok)
    assert.deepStrictEqual(second!.failures.map((f) => f.step), ["threads[1].steps[2]", "threads[1].steps[3]"], show(r))
    assert.include(second!.failures[0]!.detail, "offset 0 ")
  })
})

describe.concurrent("gpusvm bad input (spawned): exit 2, one line naming the file and JSON path, nothing run", { timeout: 30_000 }, () => {
  /**
   * Runs `simulate approx-once-malloc <args> --json` (a valid scenario first: nothing
   * may run, so stdout stays empty) and checks exit 2 and one stderr line
   * containing every fragment.
   */
  const rejects = async (args: ReadonlyArray<string>, ...fragments: ReadonlyArray<string>) => {
    const r = await gpusvm(["simulate", "approx-once-malloc", ...args, "--json"])
    assert.strictEqual(r.status, 2, show(r))
    assert.strictEqual(r.stdout, "", `nothing may run on bad input\n${show(r)}`)
    const lines = r.stderr.trim().split("\n")
    assert.strictEqual(lines.length, 1, `expected a one-line message\n${show(r)}`)
    for (const f of fragments) assert.include(lines[0]!, f, show(r))
    return lines[0]!
  }
  const file = (name: string, json: string | object) => tmp.write(name, json)

  it("a file that cannot be read", async () => {
    const missing = join(tmp.dir, "missing.json")
    await rejects([missing], missing)
    let unreadable: string
    if (process.getuid?.() !== 0) {
      unreadable = file("unreadable.json", valid("unreadable", []))
      chmodSync(unreadable, 0o000)
    } else {
      // root reads any mode; /proc/self/mem is a regular file whose read fails (EIO)
      unreadable = "/proc/self/mem"
      assert.isTrue(statSync(unreadable).isFile())
    }
    await rejects([unreadable], unreadable, "cannot read")
  })

  it("invalid JSON", async () => {
    const f = file("invalid.json", `{ "name": "invalid", "steps": [ { "op": "mmap", `)
    await rejects([f], f, "<root>", "JSON")
  })

  it("an unknown op", async () => {
    const f = file("unknown-op.json", valid("unknown-op", [{ op: "mmap", as: "a", length: "64K" }, { op: "frobnicate", buf: "a" }]))
    await rejects([f], f, "steps[1].op", "frobnicate")
  })

  it("an unknown buffer name", async () => {
    const f = file("unknown-buf.json", valid("unknown-buf", [{ op: "mmap", as: "a", length: "64K" }, { op: "cpu-write", buf: "b", pattern: 1 }]))
    await rejects([f], f, "steps[1].buf", `"b"`)
  })

  it("a negative length", async () => {
    const f = file("negative.json", valid("negative", [{ op: "mmap", as: "a", length: -4096 }]))
    await rejects([f], f, "steps[0].length", "-4096")
  })

  it("a length that is not a page multiple", async () => {
    const f = file("unaligned.json", valid("unaligned", [{ op: "mmap", as: "a", length: 5000 }]))
    await rejects([f], f, "steps[0].length", "4096")
  })

  it("an offset past the buffer", async () => {
    const f = file("past.json", valid("past", [{ op: "mmap", as: "a", length: "64K" }, { op: "gpu-read", buf: "a", offset: "64K", length: 1, expect: 0 }]))
    await rejects([f], f, "steps[1].offset", "past the buffer")
  })

  it("an unknown scenario name", async () => {
    await rejects(["no-such-scenario"], "no-such-scenario", "gpusvm scenarios")
  })

  it("a bad --seed", async () => {
    for (const seed of ["abc", "-1"]) await rejects([`--seed=${seed}`], "--seed", seed)
  })

  it("--machine foo", async () => {
    await rejects(["--machine", "foo"], "--machine", "foo")
  })

  it("one bad file among good ones: nothing runs, the bad file is named", async () => {
    const good = file("good.json", valid("good", [{ op: "mmap", as: "a", length: "4K" }, { op: "cpu-read", buf: "a", expect: "zero" }]))
    const bad = file("bad-late.json", valid("bad-late", [{ op: "mmap", as: "a", length: "4K" }, { op: "cpu-read", buf: "a", expect: 256 }]))
    await rejects([good, bad], bad, "steps[1].expect")
  })

  it("an unknown flag is bad input too (exit 2, not the exit 1 of a failed scenario)", async () => {
    const r = await gpusvm(["simulate", "approx-once-malloc", "--no-such-flag"])
    assert.strictEqual(r.status, 2, `exit 1 means "a scenario failed" (scenarios.md); a usage error is bad input\n${show(r)}`)
  })
})
