/**
 * Every exported declaration of src/ has a doc comment with an `@category`
 * tag (issue #15 part 4: "every export keeps its doc comment and gains
 * `@category`"), checked by the same scanner `node scripts/categories.ts` runs.
 */
import { assert, describe, it } from "@effect/vitest"
import { check } from "../../scripts/categories.ts"

describe("#15 part 4: doc comments with @category on every export", () => {
  it("no export of src/ lacks a doc comment or an @category", () => {
    const missing = check(false).map((m) => `${m.file.replace(/^.*\/src\//, "src/")}:${m.line} ${m.name}: ${m.why}`)
    assert.deepStrictEqual(missing, [])
  })
})
