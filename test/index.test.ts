/** The public entry point: `import { GpuSvm, Simulated, Cpu } from "gpusvm"` works and the version matches package.json. */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import * as Gpusvm from "../src/index.ts"

describe("public API (issue: export from src/index.ts)", () => {
  it("exports the core services, the simulated machine and the errors", () => {
    for (const name of ["GpuSvm", "Simulated", "Cpu", "Mm", "MmuNotifier", "Hmm", "Dma", "Driver", "BadAddress", "InvalidConfig"] as const) {
      assert.isDefined(Gpusvm[name], name)
    }
    assert.isFunction(Gpusvm.Simulated.layer)
    assert.isFunction(Gpusvm.GpuSvm.layer)
  })
  it("exports the explorer (issue #12): Explore.check, the Interleaving reference, asActor, scenario exploration, schedule strings", () => {
    assert.isFunction(Gpusvm.Explore.check)
    assert.isFunction(Gpusvm.asActor)
    assert.isDefined(Gpusvm.Interleaving)
    assert.isFunction(Gpusvm.ScenarioExplorer.explore)
    assert.isFunction(Gpusvm.ScenarioExplorer.replay)
    assert.strictEqual(Gpusvm.ScheduleString.encode([0, 0, 1]), "s1:0*2.1")
  })
  it("VERSION equals package.json's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
    assert.strictEqual(Gpusvm.VERSION, pkg.version)
  })
})
