/**
 * Issue formatting of scenario files (`scenarios.md`): Schema issues turned
 * into one-line messages `PATH: REASON`, the path written with dotted keys and
 * `[index]` (`steps[3].length: expected a positive integer, got -1`), step
 * objects that match no op explained by their `op` (missing, not a string,
 * unknown, a nested `expect-error`), and the decode error carrying them.
 *
 * @since 0.1.0
 */
import { Schema, SchemaIssue } from "effect"
import type { SchemaAST } from "effect"
import type { Scenario } from "./Codec.ts"
import { showValue } from "./Numbers.ts"
import { NestedStep, Step, STEP_OPS } from "./Step.ts"

/**
 * A problem found by a whole-file check, at a path relative to the file root.
 *
 * @category models
 * @since 0.1.0
 */
export interface PathIssue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly issue: string
}

/**
 * One problem: the JSON path (`steps[3].length`, `<root>` for the file itself)
 * and what is wrong there.
 *
 * @category models
 * @since 0.1.0
 */
export const ScenarioIssue = Schema.Struct({ path: Schema.String, reason: Schema.String })
/** @category models @since 0.1.0 */
export type ScenarioIssue = typeof ScenarioIssue.Type

/**
 * A scenario file that cannot be decoded (exit status 2, nothing run). `path`
 * and `reason` are those of the first problem; `issues` holds all of them. The
 * `message` has one line `FILE: PATH: REASON` per problem.
 *
 * @category errors
 * @since 0.1.0
 */
export class ScenarioDecodeError extends Schema.TaggedError<ScenarioDecodeError>()("ScenarioDecodeError", {
  file: Schema.optionalKey(Schema.String),
  path: Schema.String,
  reason: Schema.String,
  issues: Schema.Array(ScenarioIssue)
}) {
  /** The problems, one line each: `FILE: PATH: REASON` (without `FILE: ` when no file is known). */
  get lines(): ReadonlyArray<string> {
    const prefix = this.file === undefined ? "" : `${this.file}: `
    const all = this.issues.length > 0 ? this.issues : [{ path: this.path, reason: this.reason }]
    return all.map((i) => `${prefix}${i.path}: ${i.reason}`)
  }
  override get message(): string {
    return this.lines.join("\n")
  }
}

/**
 * A short, printable excerpt of possibly hostile text for a message: in double
 * quotes, at most `max` characters of it, printable ASCII kept, backslash and
 * quote escaped, every other character as `\xNN` / `\uNNNN`, `…` when cut.
 * Never echoes control bytes or invisible characters raw.
 *
 * @category formatting
 * @since 0.2.0
 */
export const escapeExcerpt = (text: string, max = 40): string => {
  let out = ""
  for (const ch of text.slice(0, max)) {
    const c = ch.codePointAt(0)!
    if (ch === "\\" || ch === '"') out += `\\${ch}`
    else if (c >= 0x20 && c < 0x7f) out += ch
    else if (c < 0x100) out += `\\x${c.toString(16).padStart(2, "0")}`
    else if (c < 0x10000) out += `\\u${c.toString(16).padStart(4, "0")}`
    else out += `\\u{${c.toString(16)}}`
  }
  return `"${out}"${text.length > max ? "…" : ""}`
}

/**
 * Renders a JSON path: dotted keys and `[index]`, e.g. `threads[1].steps[3].length`;
 * the empty path is `<root>`.
 *
 * @category formatting
 * @since 0.1.0
 */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) out += out === "" ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out === "" ? "<root>" : out
}

const STEP_UNIONS = new Set<SchemaAST.AST>([Step.ast, NestedStep.ast])

const lowerFirst = (s: string): string => (s.length === 0 ? s : s[0]!.toLowerCase() + s.slice(1))

const leafHook: SchemaIssue.LeafHook = (issue) => {
  switch (issue._tag) {
    case "MissingKey":
      return "missing required key"
    case "UnexpectedKey":
      return issue.ast._tag === "Arrays" ? "unexpected extra element" : "unknown key"
    case "InvalidType": {
      // "expected array, got an object" rather than the whole (possibly huge) input
      const expected = lowerFirst(SchemaIssue.defaultLeafHook(new SchemaIssue.InvalidType(issue.ast)))
      return SchemaIssue.hasInput(issue) ? `${expected}, got ${showValue(issue.input)}` : expected
    }
    default:
      return lowerFirst(SchemaIssue.defaultLeafHook(issue))
  }
}
const standard = SchemaIssue.makeFormatterStandardSchemaV1({ leafHook })

/** Why a step object matched no op: missing, non-string, unknown or misplaced `op`. */
const stepProblem = (input: unknown, path: ReadonlyArray<PropertyKey>, nested: boolean): Array<PathIssue> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return [{ path, issue: `expected a step object with an "op", got ${showValue(input)}` }]
  }
  const op = (input as Record<string, unknown>)["op"]
  if (op === undefined) return [{ path: [...path, "op"], issue: "missing required key" }]
  if (typeof op !== "string") return [{ path: [...path, "op"], issue: `expected an op name, got ${showValue(op)}` }]
  if (nested && op === "expect-error") return [{ path: [...path, "op"], issue: `"expect-error" cannot be nested` }]
  return [{ path: [...path, "op"], issue: `unknown op ${JSON.stringify(op)} (known: ${STEP_OPS.join(", ")})` }]
}

/** Flattens an issue tree into path + message pairs, with step unions explained. */
const flatten = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): Array<PathIssue> => {
  switch (issue._tag) {
    case "Pointer":
      return flatten(issue.issue, [...path, ...issue.path])
    case "Composite":
      return issue.issues.flatMap((i) => flatten(i, path))
    case "AnyOf":
      if (issue.issues.length > 0) return issue.issues.flatMap((i) => flatten(i, path))
      if (STEP_UNIONS.has(issue.ast)) {
        return stepProblem(SchemaIssue.hasInput(issue) ? issue.input : undefined, path, issue.ast === NestedStep.ast)
      }
      if (SchemaIssue.hasInput(issue)) {
        // "expected "r" | "rw", got an object" rather than the whole input
        const expected = standard(new SchemaIssue.AnyOf(issue.ast, [])).issues[0]?.message ?? "Expected a valid value"
        return [{ path, issue: `${lowerFirst(expected)}, got ${showValue(issue.input)}` }]
      }
      break
    case "Encoding":
      return flatten(issue.issue, path)
  }
  return standard(issue).issues.map((i) => ({
    path: [...path, ...(i.path ?? []).map((k) => (typeof k === "object" ? k.key : k))],
    issue: lowerFirst(i.message)
  }))
}

/**
 * Flattens any Schema issue into one `{ path, reason }` per problem, paths
 * rendered by {@link formatPath} (also useful for other schemas, e.g. results).
 *
 * @category formatting
 * @since 0.1.0
 */
export const describeIssue = (issue: SchemaIssue.Issue): ReadonlyArray<ScenarioIssue> =>
  flatten(issue, []).map((i) => ({ path: formatPath(i.path), reason: i.issue }))

/**
 * Turns a Schema issue into the decode error, paths relative to the file root.
 *
 * @category errors
 * @since 0.1.0
 */
export const toDecodeError = (issue: SchemaIssue.Issue, file?: string): ScenarioDecodeError => {
  const issues = describeIssue(issue)
  const first = issues[0] ?? { path: "<root>", reason: "invalid scenario" }
  return new ScenarioDecodeError({ ...(file === undefined ? {} : { file }), path: first.path, reason: first.reason, issues })
}

/**
 * The path a runner names a step by in failures: `steps[i]` when the scenario
 * has one thread, `threads[t].steps[i]` otherwise (the normal form; a file
 * that wrote a single thread under `threads` is named as if it used `steps`);
 * in the `processes` form `processes[p].steps[i]` or
 * `processes[p].threads[t].steps[i]`.
 *
 * @category formatting
 * @since 0.1.0
 */
export const stepPath = (scenario: Scenario, thread: number, index: number): string => {
  const t = scenario.threads[thread]
  if (scenario.processes !== undefined && t?.process !== undefined) {
    // kernel-semantics §11.17: the `processes` form names a step by its process
    const p = scenario.processes.findIndex((x) => x.name === t.process)
    const mine = scenario.threads.filter((x) => x.process === t.process)
    return mine.length === 1 ? `processes[${p}].steps[${index}]` : `processes[${p}].threads[${mine.indexOf(t)}].steps[${index}]`
  }
  return scenario.threads.length === 1 && thread === 0 ? `steps[${index}]` : `threads[${thread}].steps[${index}]`
}
