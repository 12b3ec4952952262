/**
 * docs/scenarios.md is the scenario contract users write files against
 * (issue #15 part 7): these tests read the schema (`src/domain/Scenario.ts`)
 * and the document side by side, so an op, a field or an injection added to
 * one and not to the other fails here.
 */
import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema, SchemaAST } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as S from "../../src/domain/Scenario.ts"

const DOC_PATH = join(import.meta.dirname, "..", "..", "docs", "scenarios.md")
const DOC = readFileSync(DOC_PATH, "utf8")

/** One op of the step union, read from the schema's AST. */
interface OpShape {
  readonly op: string
  /** Every field but `op`: its name, whether it is optional, its literal values when it is a union of literals. */
  readonly fields: ReadonlyArray<{ readonly name: string; readonly optional: boolean; readonly literals: ReadonlyArray<string> | undefined }>
}

const literalsOf = (ast: SchemaAST.AST): ReadonlyArray<string> | undefined => {
  if (SchemaAST.isLiteral(ast)) return [String(ast.literal)]
  if (SchemaAST.isUnion(ast) && ast.types.every(SchemaAST.isLiteral)) {
    return ast.types.map((t) => String((t as SchemaAST.Literal).literal))
  }
  return undefined
}

/** The ops of `S.Step` and their fields, in the union's order. */
const schemaOps = (): ReadonlyArray<OpShape> => {
  const union = S.Step.ast
  assert.isTrue(SchemaAST.isUnion(union), "Step is a union")
  if (!SchemaAST.isUnion(union)) return []
  return union.types.map((member) => {
    assert.isTrue(SchemaAST.isObjects(member), "every Step member is a struct")
    if (!SchemaAST.isObjects(member)) throw new Error("unreachable")
    const opSig = member.propertySignatures.find((p) => p.name === "op")
    const op = opSig === undefined ? undefined : literalsOf(opSig.type)
    assert.isDefined(op, "every Step member has a literal op")
    return {
      op: op![0]!,
      fields: member.propertySignatures
        .filter((p) => p.name !== "op")
        .map((p) => ({ name: String(p.name), optional: SchemaAST.isOptional(p.type), literals: literalsOf(p.type) }))
    }
  })
}

/** A row of the op table: the ops of its first cell, the text of its fields cell. */
interface OpRow {
  readonly ops: ReadonlyArray<string>
  readonly fields: string
  readonly line: string
}

/** The rows of the op table (`| op | fields | meaning |`) of docs/scenarios.md. */
const docRows = (): ReadonlyArray<OpRow> => {
  const lines = DOC.split("\n")
  const header = lines.findIndex((l) => /^\|\s*op\s*\|\s*fields\s*\|/.test(l))
  assert.isAtLeast(header, 0, "docs/scenarios.md has an op table with a header `| op | fields | meaning |`")
  const rows: Array<OpRow> = []
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith("|"); i++) {
    const cells = lines[i]!.split("|").slice(1, -1).map((c) => c.trim())
    rows.push({ ops: [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!), fields: cells[1] ?? "", line: lines[i]! })
  }
  return rows
}

/**
 * The documented fields of a row: `as, length, addr?, kind? ("anonymous"/"file")`
 * → `as`, `length`, `addr?`, `kind?` with its values. Backticks dropped;
 * brackets (`[[start, end], …]`) are not items.
 */
const docFields = (cell: string) => {
  let text = cell.replace(/`/g, "")
  for (let prev = ""; prev !== text;) [prev, text] = [text, text.replace(/\[[^[\]]*\]/g, "")]
  return text.split(",").map((item) => item.trim()).filter((item) => item.length > 0).map((item) => {
    const m = /^([A-Za-z]+)(\?)?/.exec(item)
    const values = /\(([^)]*)\)/.exec(item)?.[1]
    const quoted = values === undefined ? [] : [...values.matchAll(/"([^"]+)"/g)].map((q) => q[1]!)
    return { name: m?.[1] ?? item, optional: m?.[2] === "?", literals: quoted.length > 0 ? quoted : undefined }
  })
}

/** The file-format example (the first ```jsonc block), comments removed, parsed. */
const formatExample = (): Record<string, unknown> => {
  const block = /```jsonc\n([\s\S]*?)```/.exec(DOC)?.[1]
  assert.isDefined(block, "docs/scenarios.md has a ```jsonc file-format example")
  const json = block!.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "")
  return JSON.parse(json) as Record<string, unknown>
}

const keysOf = (ast: SchemaAST.AST): ReadonlyArray<string> =>
  SchemaAST.isObjects(ast) ? ast.propertySignatures.map((p) => String(p.name)) : []

describe("docs/scenarios.md against the scenario schema (#15 part 7)", () => {
  it("#15 part 7: every op of the Step schema union has a row in the op table of docs/scenarios.md", () => {
    const ops = schemaOps().map((o) => o.op)
    assert.deepStrictEqual(ops, [...S.STEP_OPS], "STEP_OPS lists the union's ops in order")
    assert.isAtLeast(ops.length, 17)
    const documented = new Set(docRows().flatMap((r) => r.ops))
    const missing = ops.filter((op) => !documented.has(op))
    assert.deepStrictEqual(missing, [], `ops of the schema missing from the op table of ${DOC_PATH}`)
    const unknown = [...documented].filter((op) => !ops.includes(op as S.StepOp))
    assert.deepStrictEqual(unknown, [], "ops in the op table that the schema does not know")
  })

  it("#15 part 7: every op's row lists exactly its fields, `?` on the optional ones, with the schema's literal values", () => {
    const rows = docRows()
    for (const shape of schemaOps()) {
      const row = rows.find((r) => r.ops.includes(shape.op))
      if (row === undefined) return assert.fail(`no row for op ${shape.op}`)
      const documented = docFields(row.fields)
      assert.deepStrictEqual(
        documented.map((f) => f.name).sort(),
        shape.fields.map((f) => f.name).sort(),
        `fields of ${shape.op} (row: ${row.line})`
      )
      for (const f of shape.fields) {
        const d = documented.find((x) => x.name === f.name)!
        assert.strictEqual(d.optional, f.optional, `${shape.op}.${f.name}: optional in the schema iff written "${f.name}?" (row: ${row.line})`)
        if (d.literals !== undefined) {
          assert.deepStrictEqual(d.literals, f.literals, `${shape.op}.${f.name}: the values listed in the row (row: ${row.line})`)
        }
      }
    }
  })

  it("#15 part 7: the machine, svm and policy blocks of the file-format example decode, and name every field of the schema", () => {
    const example = formatExample()
    for (const [key, schema] of [["machine", S.MachineBlock], ["svm", S.SvmSpec]] as const) {
      const exit = Schema.decodeUnknownExit(schema as Schema.Codec<unknown, unknown>)(example[key], S.PARSE_OPTIONS)
      assert.isTrue(Exit.isSuccess(exit), `the example's ${key} block decodes: ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
    }
    assert.includeMembers(["never", "always", "xe"], [(example["policy"] as { migrate: string }).migrate])
    const machine = example["machine"] as Record<string, Record<string, unknown>>
    const machineAst = S.MachineBlock.ast
    assert.deepStrictEqual(Object.keys(machine).sort(), [...keysOf(machineAst)].sort(), "machine fields")
    assert.deepStrictEqual(Object.keys(machine["inject"]!).sort(), [...keysOf(S.MachineBlock.fields.inject.schema.ast)].sort(), "machine.inject fields")
    assert.deepStrictEqual(Object.keys(example["svm"] as object).sort(), [...keysOf(S.SvmSpec.ast)].sort(), "svm fields")
  })
})
