/**
 * Loading scenarios for the CLI: a command-line word is a file path if such a
 * file exists, else the name of a built-in scenario (`scenarios/<name>.json` in
 * the package). Every scenario is read and decoded before anything runs; a
 * problem is a `LoadError` naming the file and, for each problem of the file,
 * its JSON path (exit status 2).
 *
 * Hostile paths say what they are instead of "no such file": a directory, a
 * FIFO / device / socket ("not a regular file", never opened, so a FIFO cannot
 * block), a symlink loop ("too many symbolic links"). A UTF-8 byte-order mark
 * is skipped; input that is not UTF-8 text is reported with a short escaped
 * excerpt, never echoed raw.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Schema } from "effect"
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, type Stats } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { HUGE_PAGE_SIZE } from "../domain/Address.ts"
import { decodeScenarioText, escapeExcerpt, type Scenario } from "../domain/Scenario.ts"
import { build } from "../igt/Generate.ts"
import { matching, type Subtest } from "../igt/Subtests.ts"

/**
 * Bad input: unreadable file, invalid JSON, schema error, unknown scenario
 * name. `lines` has one line per problem, each naming the file (and JSON
 * path); `message` is one line: the first problem, and how many more.
 *
 * @category errors
 */
export class LoadError extends Schema.TaggedError<LoadError>()("LoadError", { reason: Schema.String }) {
  /** One line per problem. */
  get lines(): ReadonlyArray<string> {
    return this.reason.split("\n")
  }
  override get message(): string {
    const [first, ...more] = this.lines
    return more.length === 0 ? first! : `${first} (and ${more.length} more problem${more.length === 1 ? "" : "s"})`
  }
}

/**
 * The directory of the built-in scenarios (`<package>/scenarios`, from `src/cli` or `dist/cli`).
 *
 * @category cli
 */
export const builtinDir = (): string => resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "scenarios")

/**
 * A scenario with where it came from.
 *
 * @category models
 */
export interface Loaded {
  readonly scenario: Scenario
  readonly source: string
}

/**
 * Names and descriptions of the built-in scenarios, sorted.
 *
 * @category cli
 */
export const builtins = (): Effect.Effect<ReadonlyArray<{ readonly name: string; readonly description: string; readonly file: string }>, LoadError> =>
  Effect.gen(function*() {
    const dir = builtinDir()
    if (!existsSync(dir)) return []
    const out: Array<{ name: string; description: string; file: string }> = []
    for (const f of readdirSync(dir).filter((x) => x.endsWith(".json")).sort()) {
      const loaded = yield* loadFile(join(dir, f))
      out.push({ name: loaded.scenario.name, description: loaded.scenario.description ?? "", file: loaded.source })
    }
    return out
  })

const BOM = [0xef, 0xbb, 0xbf] as const
const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The text of a file's bytes: a leading UTF-8 BOM skipped; bytes that are not
 * UTF-8, or text with NUL bytes, are binary input (a short escaped excerpt).
 */
const textOf = (path: string, bytes: Uint8Array): string | LoadError => {
  const body = bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2] ? bytes.subarray(3) : bytes
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    text = ""
  }
  if (text === "" && body.length > 0 || text.includes("\u0000")) {
    const head = Array.from(body.subarray(0, 24), (b) => String.fromCharCode(b)).join("")
    return new LoadError({ reason: `${path}: <root>: not a JSON text file (binary input starting ${escapeExcerpt(head, 24)})` })
  }
  return text
}

/**
 * Reads and decodes one scenario file; every problem of the file is a line of the error.
 *
 * @category cli
 */
export const loadFile = (path: string): Effect.Effect<Loaded, LoadError> =>
  Effect.suspend(() => {
    let bytes: Uint8Array
    try {
      bytes = readFileSync(path)
    } catch (error) {
      return Effect.fail(new LoadError({ reason: `${path}: cannot read the file: ${(error as Error).message}` }))
    }
    const text = textOf(path, bytes)
    if (text instanceof LoadError) return Effect.fail(text)
    const exit = decodeScenarioText(text, path)
    if (Exit.isSuccess(exit)) return Effect.succeed({ scenario: exit.value, source: path })
    const reason = exit.cause.reasons[0]
    const err = reason !== undefined && reason._tag === "Fail" ? reason.error : undefined
    return Effect.fail(new LoadError({ reason: err === undefined ? `${path}: invalid scenario` : err.lines.join("\n") }))
  })

/** What a path that is not a regular file is, for the message. */
const kindOf = (st: Stats): string =>
  st.isDirectory()
    ? "is a directory"
    : st.isFIFO()
    ? "not a regular file (a FIFO)"
    : st.isCharacterDevice()
    ? "not a regular file (a character device)"
    : st.isBlockDevice()
    ? "not a regular file (a block device)"
    : st.isSocket()
    ? "not a regular file (a socket)"
    : "not a regular file"

/** Why `path` cannot be a scenario file, or `undefined` when it is a regular file; `"missing"` when nothing is there. */
const pathProblem = (path: string): string | "missing" | undefined => {
  try {
    const st = statSync(path)
    return st.isFile() ? undefined : kindOf(st)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ELOOP") return "too many symbolic links (a symlink loop)"
    if (code === "ENOENT") {
      try {
        if (lstatSync(path).isSymbolicLink()) return "a symbolic link to a missing file"
      } catch {
        // nothing there at all
      }
      return "missing"
    }
    if (code === "ENOTDIR") return "not a file (a path component is not a directory)"
    if (code === "ENAMETOOLONG") return "the file name is too long"
    return `cannot be read: ${(error as Error).message}`
  }
}

/**
 * Resolves one command-line word: an existing regular file, else a built-in
 * name; anything else says what the path is.
 *
 * @category cli
 */
export const loadWord = (word: string): Effect.Effect<Loaded, LoadError> => {
  const problem = pathProblem(word)
  if (problem === undefined) return loadFile(word)
  const builtin = join(builtinDir(), `${word}.json`)
  if (/^[a-z0-9-]+$/.test(word) && existsSync(builtin)) return loadFile(builtin)
  return Effect.fail(
    new LoadError({
      reason: problem === "missing"
        ? `${word}: no such file, and no built-in scenario of that name (see \`gpusvm scenarios\`)`
        : `${word}: ${problem}: give a scenario file (JSON) or a built-in scenario name (see \`gpusvm scenarios\`)`
    })
  )
}

/**
 * Free 2 MiB huge pages on this host (`HugePages_Free` of /proc/meminfo; 0 when unknown).
 *
 * @category cli
 */
export const hugePagesFree = (): number => {
  try {
    const m = /^HugePages_Free:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

/**
 * Why the native machine cannot express `scenario`, or `undefined`: a file
 * mapping (the native machine maps anonymous and hugetlb memory only),
 * buffer objects (no BO allocator natively, §11.17),
 * kernel page moves (`kernel-*` steps, `machine.kernel`: simulated-only, §11.17),
 * device-exclusive access (`make-exclusive`, `svm.systemAtomics: "exclusive"`, §11.17),
 * or hugetlb mappings needing more huge pages than the host has free.
 *
 * @category cli
 */
export const nativeSkipReason = (scenario: Scenario, freeHugePages: () => number = hugePagesFree): string | undefined => {
  const steps = scenario.threads.flatMap((t) => t.steps.map((s) => (s.op === "expect-error" ? s.step : s)))
  const mmaps = steps.filter((s) => s.op === "mmap")
  if (mmaps.some((s) => s.kind === "file")) return "file mappings are simulated only (the native machine maps anonymous and hugetlb memory)"
  if (steps.some((s) => s.op === "bo-create")) return "buffer objects are simulated only (the native pagemap has no BO allocator; kernel-semantics §11.17)"
  // kernel-semantics §11.17: the host kernel moves pages when it likes, not on demand
  if (scenario.machine?.kernel !== undefined || steps.some((s) => s.op.startsWith("kernel-"))) return "kernel page moves are simulated-only"
  if (steps.some((s) => s.op === "make-exclusive") || scenario.svm?.systemAtomics === "exclusive") {
    return "device-exclusive access (make-exclusive, svm.systemAtomics \"exclusive\") is simulated only (make_device_exclusive needs an in-kernel driver)"
  }
  const huge = mmaps.filter((s) => s.kind === "hugetlb").reduce((n, s) => n + s.length / HUGE_PAGE_SIZE, 0)
  if (huge > 0) {
    const free = freeHugePages()
    if (free < huge) return `hugetlb needs ${huge} reserved 2 MiB huge pages, the host has ${free} free (HugePages_Free in /proc/meminfo)`
  }
  return undefined
}

/**
 * A generated IGT subtest of `igt:<name>` / `igt:<glob>` (issue #17 part 4):
 * its scenario, or why it is not run (`vacuous`: IGT returns at once;
 * `skipped`: what the model lacks).
 *
 * @category models
 */
export type IgtLoaded =
  | { readonly kind: "scenario"; readonly name: string; readonly loaded: Loaded }
  | { readonly kind: "vacuous" | "skipped"; readonly name: string; readonly reason: string }

/**
 * Expands `igt:<name>` or `igt:<glob>` into the generated subtests, in IGT's
 * order; a glob matching nothing is a `LoadError`.
 *
 * @category cli
 */
export const loadIgt = (word: string): Effect.Effect<ReadonlyArray<IgtLoaded>, LoadError> =>
  Effect.map(expandIgt(word), (subtests) =>
    subtests.map((t): IgtLoaded => {
      const b = build(t)
      return b.kind === "scenario"
        ? { kind: "scenario", name: t.name, loaded: { scenario: b.scenario, source: `igt:${t.name}` } }
        : { kind: b.kind, name: t.name, reason: b.reason }
    }))

/**
 * The subtests `igt:<name>` or `igt:<glob>` names, in IGT's order, without
 * building them (`--workers N` builds each in its worker); a glob matching
 * nothing is a `LoadError`.
 *
 * @category cli
 */
export const expandIgt = (word: string): Effect.Effect<ReadonlyArray<Subtest>, LoadError> =>
  Effect.suspend(() => {
    const glob = word.slice("igt:".length)
    const subtests = matching(glob)
    return subtests.length === 0
      ? Effect.fail(new LoadError({ reason: `${word}: no IGT subtest matches "${glob}" (see \`gpusvm igt list\`)` }))
      : Effect.succeed(subtests)
  })
