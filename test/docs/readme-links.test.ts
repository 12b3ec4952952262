/**
 * README.md and docs/ link only inside the repository (issue #15 part 7: a
 * clone, or the npm tarball's README, has no `../shared/docs/…`), every link
 * resolves, and the README's Layout names every folder of src/.
 */
import { assert, describe, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

const ROOT = resolve(import.meta.dirname, "..", "..")
const DOCS = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)]

/** The targets of the markdown links `[text](target)` of a file, code blocks left out. */
const links = (file: string): ReadonlyArray<string> => {
  const text = readFileSync(join(ROOT, file), "utf8").replace(/```[\s\S]*?```/g, "")
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!)
}

/** The anchors GitHub makes of a file's headings. */
const anchors = (file: string): ReadonlySet<string> =>
  new Set(readFileSync(join(ROOT, file), "utf8").replace(/```[\s\S]*?```/g, "").split("\n")
    .filter((l) => /^#{1,6} /.test(l))
    .map((l) => l.replace(/^#+ /, "").trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")))

describe("README and docs link inside the repository (#15 part 7)", () => {
  it("#15 part 7: every link of README.md and docs/*.md is a file or anchor of this repository, none outside it", () => {
    const bad: Array<string> = []
    let checked = 0
    for (const file of DOCS) {
      for (const target of links(file)) {
        checked++
        if (/^[a-z]+:/i.test(target)) {
          bad.push(`${file}: ${target} (leaves the repository)`)
          continue
        }
        const [path, anchor] = target.split("#") as [string, string | undefined]
        const resolved = path === "" ? join(ROOT, file) : resolve(ROOT, dirname(file), path)
        if (relative(ROOT, resolved).startsWith("..")) bad.push(`${file}: ${target} (outside the repository)`)
        else if (!existsSync(resolved)) bad.push(`${file}: ${target} (no such file)`)
        else if (anchor !== undefined && resolved.endsWith(".md") && !anchors(relative(ROOT, resolved)).has(anchor)) {
          bad.push(`${file}: ${target} (no such heading)`)
        }
      }
    }
    assert.isAtLeast(checked, 10, "links found")
    assert.deepStrictEqual(bad, [])
  })

  it("#15 part 7: the README's Layout names every folder of src/ (src/stacks, src/internal, src/testing among them)", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8")
    const layout = readme.split(/^## Layout\s*$/m)[1]?.split(/^## /m)[0]
    assert.isDefined(layout, "README.md has a `## Layout` section")
    const folders = readdirSync(join(ROOT, "src"), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `src/${d.name}/`)
    const expected = [...new Set([...folders, "src/stacks/", "src/internal/", "src/testing/"])]
    assert.deepStrictEqual(expected.filter((f) => !layout!.includes(f)), [], "src/ folders missing from the README's Layout")
  })
})
