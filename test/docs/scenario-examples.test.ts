/**
 * docs/scenarios.md "Steps by example" (issue #15 part 7): every op and every
 * field of the scenario format has an example a user can copy. These tests
 * decode each example line as a step with the scenario schema, decode the lines
 * together as one scenario (the cross-step checks: buffers named before use,
 * offsets inside buffers), and check that every op of the step union and every
 * field of each op occurs in the examples.
 */
import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema, SchemaAST } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as S from "../../src/domain/Scenario.ts"

const DOC_PATH = join(import.meta.dirname, "..", "..", "docs", "scenarios.md")
const DOC = readFileSync(DOC_PATH, "utf8")

/** A line without its `//` note (a `//` outside JSON strings). */
const withoutNote = (line: string): string => {
  let inString = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === "\\") i++
    else if (c === "\"") inString = !inString
    else if (!inString && c === "/" && line[i + 1] === "/") return line.slice(0, i)
  }
  return line
}

/** The step objects of the ```jsonc block under `## Steps by example`, one per line. */
const examples = (): ReadonlyArray<{ readonly line: string; readonly step: Record<string, unknown> }> => {
  const section = DOC.split(/^## Steps by example\s*$/m)[1]?.split(/^## /m)[0]
  assert.isDefined(section, "docs/scenarios.md has a `## Steps by example` section")
  const block = /```jsonc\n([\s\S]*?)```/.exec(section!)?.[1]
  assert.isDefined(block, "the section has a ```jsonc block")
  return block!.split("\n").filter((l) => l.trim().length > 0).map((line) => ({ line, step: JSON.parse(withoutNote(line)) as Record<string, unknown> }))
}

/** The ops of the step union and the names of their fields (without `op`). */
const schemaFields = (): ReadonlyMap<string, ReadonlyArray<string>> => {
  const union = S.Step.ast
  if (!SchemaAST.isUnion(union)) throw new Error("Step is a union")
  return new Map(union.types.map((member) => {
    if (!SchemaAST.isObjects(member)) throw new Error("every Step member is a struct")
    const names = member.propertySignatures.map((p) => String(p.name))
    const opSig = member.propertySignatures.find((p) => p.name === "op")!
    const op = SchemaAST.isLiteral(opSig.type) ? String(opSig.type.literal) : "?"
    return [op, names.filter((n) => n !== "op")] as const
  }))
}

describe("docs/scenarios.md steps by example (#15 part 7)", () => {
  it("#15 part 7: every example line decodes as a step of the scenario schema", () => {
    for (const { line, step } of examples()) {
      const exit = Schema.decodeUnknownExit(S.Step as Schema.Codec<unknown, unknown>)(step, S.PARSE_OPTIONS)
      assert.isTrue(Exit.isSuccess(exit), `${line.trim()}: ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
    }
  })

  it("#15 part 7: the examples together are the steps of a scenario that decodes (buffers named before use, windows inside them)", () => {
    const exit = S.decodeScenario({ name: "steps-by-example", steps: examples().map((e) => e.step) })
    assert.isTrue(Exit.isSuccess(exit), Exit.isFailure(exit) ? String(exit.cause) : "")
  })

  it("#15 part 7: every op of the step union has an example, and every field of each op occurs in one", () => {
    const fields = schemaFields()
    assert.deepStrictEqual([...fields.keys()], [...S.STEP_OPS])
    const steps = examples().map((e) => e.step)
    const seen = (st: Record<string, unknown>): ReadonlyArray<Record<string, unknown>> =>
      st["op"] === "expect-error" ? [st, ...seen(st["step"] as Record<string, unknown>)] : [st]
    const all = steps.flatMap(seen)
    for (const [op, names] of fields) {
      const ofOp = all.filter((s) => s["op"] === op)
      assert.isAbove(ofOp.length, 0, `an example of op ${op} in ${DOC_PATH}`)
      const used = new Set(ofOp.flatMap((s) => Object.keys(s)))
      assert.deepStrictEqual(names.filter((n) => !used.has(n)), [], `fields of ${op} with no example`)
    }
  })
})
