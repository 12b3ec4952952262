/**
 * `node scripts/categories.ts [--write]`: every exported declaration of src/
 * has a doc comment with an `@category` tag (issue #15 part 4). Without
 * `--write` it lists the exports that lack one (exit 1 if any); with `--write`
 * it adds the tag where a doc comment exists (a one-line comment becomes a
 * block), choosing the category from the declaration: errors, services,
 * schemas, models (interfaces and types), constants, layers, and functions.
 * Exports with no doc comment at all are listed and never invented.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"

const ROOT = new URL("..", import.meta.url).pathname
const SRC = join(ROOT, "src")

const files = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : []
  })

const DECL = /^export (?:declare )?(?:abstract )?(const|let|function\*?|async function|class|interface|type|enum) ([A-Za-z_$][\w$]*)/

/** The category of the declaration on `line` (with the lines after it). */
const categoryOf = (kind: string, name: string, line: string, next: string, file: string): string => {
  const text = `${line} ${next}`
  if (kind === "class" && /TaggedError|Data\.Error|extends Error/.test(text)) return "errors"
  if (kind === "class" && /Context\.(Service|Tag|Reference)/.test(text)) return "services"
  if (kind === "class") return "models"
  if (kind === "interface" || kind === "type" || kind === "enum") return "models"
  if (/=\s*Schema\./.test(text) || /Schema\.(Struct|Union|Literal|TaggedError)/.test(line)) return "schemas"
  if (/Context\.Reference/.test(text)) return "services"
  if (/Layer\./.test(line) || /\blayer/i.test(name)) return "layers"
  if (/^[A-Z][A-Z0-9_]*$/.test(name)) return "constants"
  if (file.includes("/cli/")) return "cli"
  return "functions"
}

interface Missing {
  readonly file: string
  readonly line: number
  readonly name: string
  readonly why: "no doc comment" | "no @category"
}

const process1 = (file: string, write: boolean): Array<Missing> => {
  const lines = readFileSync(file, "utf8").split("\n")
  const missing: Array<Missing> = []
  let changed = false
  for (let i = 0; i < lines.length; i++) {
    const m = DECL.exec(lines[i]!)
    if (m === null) continue
    const [, kind, name] = m as unknown as [string, string, string]
    // find the doc comment ending right above (decorators / blank lines not allowed between)
    let j = i - 1
    // an overload of the function declared just above shares its doc comment
    const overload = (kind.startsWith("function") || kind === "async function") &&
      lines.slice(Math.max(0, i - 20), i).some((l) => l.startsWith(`export function ${name}(`) || l.startsWith(`export function ${name}<`))
    if (overload) continue
    if (j < 0 || !lines[j]!.trimEnd().endsWith("*/")) {
      missing.push({ file, line: i + 1, name, why: "no doc comment" })
      continue
    }
    let k = j
    while (k >= 0 && !lines[k]!.trimStart().startsWith("/**")) k--
    if (k < 0) {
      missing.push({ file, line: i + 1, name, why: "no doc comment" })
      continue
    }
    const block = lines.slice(k, j + 1).join("\n")
    if (block.includes("@category")) continue
    if (!write) {
      missing.push({ file, line: i + 1, name, why: "no @category" })
      continue
    }
    const cat = categoryOf(kind, name, lines[i]!, lines[i + 1] ?? "", file)
    const indent = lines[k]!.slice(0, lines[k]!.indexOf("/**"))
    if (k === j) {
      // one-line `/** text */`
      const text = lines[k]!.trim().replace(/^\/\*\*\s?/, "").replace(/\s?\*\/$/, "")
      lines.splice(k, 1, `${indent}/**`, `${indent} * ${text}`, `${indent} *`, `${indent} * @category ${cat}`, `${indent} */`)
      i += 4
    } else {
      const hasTags = lines.slice(k, j).some((l) => /^\s*\*\s*@/.test(l))
      const add = hasTags ? [`${indent} * @category ${cat}`] : [`${indent} *`, `${indent} * @category ${cat}`]
      lines.splice(j, 0, ...add)
      i += add.length
    }
    changed = true
  }
  if (changed) writeFileSync(file, lines.join("\n"))
  return missing
}

/** Every export of src/ lacking a doc comment or (without `write`) an `@category`. */
export const check = (write = false): Array<Missing> => files(SRC).flatMap((f) => process1(f, write))

if (import.meta.url === `file://${process.argv[1]}`) {
  const write = process.argv.includes("--write")
  const missing = check(write)
  for (const m of missing) console.log(`${relative(ROOT, m.file)}:${m.line} ${m.name}: ${m.why}`)
  console.log(`${missing.length} export(s) lacking ${write ? "a doc comment" : "a doc comment or @category"}`)
  process.exitCode = missing.length > 0 ? 1 : 0
}
