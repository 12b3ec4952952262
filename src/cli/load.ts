/**
 * Loading scenarios for the CLI: a command-line word is a file path if such a
 * file exists, else the name of a built-in scenario (`scenarios/<name>.json` in
 * the package). Every scenario is read and decoded before anything runs; the
 * first problem is a `LoadError` naming the file and JSON path (exit status 2).
 *
 * @since 0.1.0
 */
import { Effect, Exit, Schema } from "effect"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { decodeScenarioText, type Scenario } from "../domain/Scenario.ts"

/** Bad input: unreadable file, invalid JSON, schema error, unknown scenario name. `message` is one line. */
export class LoadError extends Schema.TaggedError<LoadError>()("LoadError", { reason: Schema.String }) {
  override get message(): string {
    return this.reason
  }
}

/** The directory of the built-in scenarios (`<package>/scenarios`, from `src/cli` or `dist/cli`). */
export const builtinDir = (): string => resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "scenarios")

/** A scenario with where it came from. */
export interface Loaded {
  readonly scenario: Scenario
  readonly source: string
}

/** Names and descriptions of the built-in scenarios, sorted. */
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

/** Reads and decodes one scenario file. */
export const loadFile = (path: string): Effect.Effect<Loaded, LoadError> =>
  Effect.suspend(() => {
    let text: string
    try {
      text = readFileSync(path, "utf8")
    } catch (error) {
      return Effect.fail(new LoadError({ reason: `${path}: cannot read the file: ${(error as Error).message}` }))
    }
    const exit = decodeScenarioText(text, path)
    if (Exit.isSuccess(exit)) return Effect.succeed({ scenario: exit.value, source: path })
    const reason = exit.cause.reasons[0]
    const err = reason !== undefined && reason._tag === "Fail" ? reason.error : undefined
    return Effect.fail(new LoadError({ reason: err === undefined ? `${path}: invalid scenario` : err.message.split("\n")[0]! }))
  })

/** Resolves one command-line word: an existing file, else a built-in name. */
export const loadWord = (word: string): Effect.Effect<Loaded, LoadError> => {
  if (existsSync(word) && statSync(word).isFile()) return loadFile(word)
  const builtin = join(builtinDir(), `${word}.json`)
  if (/^[a-z0-9-]+$/.test(word) && existsSync(builtin)) return loadFile(builtin)
  return Effect.fail(new LoadError({ reason: `${word}: no such file, and no built-in scenario of that name (see \`gpusvm scenarios\`)` }))
}
