/**
 * The report's bundled assets, read from the installed `uplot` package
 * (a runtime dependency): its minified IIFE build and its stylesheet, inlined
 * into every report so that the file opens offline.
 *
 * @since 0.3.0
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import type { ReportAssets } from "./Html.ts"

let cached: ReportAssets | undefined

/**
 * uPlot's `dist/uPlot.iife.min.js` and `dist/uPlot.min.css` (read once).
 * Throws if the `uplot` package is not installed.
 *
 * @category assets
 * @since 0.3.0
 */
export const load = (): ReportAssets => {
  if (cached !== undefined) return cached
  const require = createRequire(import.meta.url)
  const read = (file: string) => readFileSync(require.resolve(`uplot/dist/${file}`), "utf8")
  cached = { uplotJs: read("uPlot.iife.min.js"), uplotCss: read("uPlot.min.css") }
  return cached
}
