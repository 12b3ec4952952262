/**
 * The README's "Testing your driver with gpusvm/testing" snippet, verified:
 * its code block is extracted, its package imports (`gpusvm/testing`,
 * `gpusvm`) are pointed at the sources, and its tests are registered here and
 * run as written (a user's driver-policy test with the kit).
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, "..", "..")
const readme = readFileSync(join(root, "README.md"), "utf8")
const HEADING = "### Testing your driver with gpusvm/testing"

/** The section's first ```ts block. */
const section = readme.slice(readme.indexOf(HEADING))
const snippet = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? ""

const rewritten = snippet
  .replace(/from "gpusvm\/testing"/g, `from ${JSON.stringify(pathToFileURL(join(root, "src/testing/index.ts")).href)}`)
  .replace(/from "gpusvm"/g, `from ${JSON.stringify(pathToFileURL(join(root, "src/index.ts")).href)}`)

describe("README: Testing your driver with gpusvm/testing", () => {
  it("the section follows \"### In tests\" and its snippet imports the kit from the package", () => {
    const inTests = readme.indexOf("### In tests")
    assert.isAbove(inTests, 0)
    const next = readme.indexOf("\n#", inTests + 1)
    assert.strictEqual(readme.indexOf(HEADING), next + 1, "the new subsection comes right after \"### In tests\"")
    assert.include(snippet, `from "gpusvm/testing"`)
    assert.include(snippet, `from "gpusvm"`)
    assert.notInclude(rewritten, `from "gpusvm`)
  })
})

// The snippet's own describe/it blocks register here (a module beside this one, so
// "effect" and "@effect/vitest" resolve as for any test; removed once loaded).
const file = join(here, `.readme-snippet-${process.pid}.ts`)
writeFileSync(file, rewritten)
try {
  await import(pathToFileURL(file).href)
} finally {
  rmSync(file, { force: true })
}
