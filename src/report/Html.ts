/**
 * The offline HTML report of one run (issue #19): one self-contained file —
 * no network; uPlot's script and styles, the page's script and the run's data
 * inlined — with the address-space map over time, the per-actor swim lanes
 * (violation marked, the events that led to it highlighted), the metric plots
 * and the scenario text with the result summary.
 *
 * {@link render} is pure: the assets (uPlot) are passed in; `Assets.ts`
 * reads them from the installed `uplot` package.
 *
 * @since 0.3.0
 */
import type { RunEvent } from "../domain/RunEvent.ts"
import type { ScenarioResult } from "../domain/ScenarioResult.ts"
import { leadingEvents, seriesOf, verdictOf } from "./Analysis.ts"
import { CLIENT_JS } from "./client.ts"

/**
 * The bundled plotting library's files.
 *
 * @category models
 * @since 0.3.0
 */
export interface ReportAssets {
  /** `uPlot.iife.min.js`. */
  readonly uplotJs: string
  /** `uPlot.min.css`. */
  readonly uplotCss: string
}

/**
 * What a report shows.
 *
 * @category models
 * @since 0.3.0
 */
export interface ReportInput {
  /** The run's result. */
  readonly result: ScenarioResult
  /** The run's events (`Recorder.finish`). */
  readonly events: ReadonlyArray<RunEvent>
  /** The scenario as text (its JSON). */
  readonly scenarioText: string
  /** The command line that made the run (shown, to rerun it). */
  readonly command: string
}

/** JSON safe inside a `<script>` element (no `</script>`, no `<!--`). */
const scriptJson = (value: unknown): string =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029")

/** Text safe inside a `<script>` / `<style>` element. */
const inlineCode = (code: string): string => code.replace(/<\/(script|style)/gi, "<\\/$1")

const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const STYLE = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #111; }
h1 { font-size: 18px; margin: 0 0 8px; } h2 { font-size: 15px; margin: 18px 0 6px; }
.ok { color: #15803d; font-weight: 600; } .bad { color: #b91c1c; font-weight: 600; }
.metrics span { display: inline-block; border: 1px solid #ddd; border-radius: 3px; padding: 1px 6px; margin: 0 4px 4px 0; font-size: 12px; }
pre { background: #f6f8fa; padding: 8px; max-height: 320px; overflow: auto; font-size: 12px; }
#map-canvas { width: 100%; height: 150px; border: 1px solid #ccc; cursor: grab; display: block; }
#map-time { width: 100%; }
#map-history { width: 100%; height: 220px; border: 1px solid #ccc; display: block; }
.controls button { margin-right: 4px; }
#lanes { position: relative; border: 1px solid #ccc; padding: 4px 0; }
.lane { display: flex; align-items: center; height: 38px; border-bottom: 1px dashed #eee; }
.lane-label { width: 86px; padding-left: 4px; font-weight: 600; flex: none; }
.lane-canvas { flex: 1; height: 34px; width: calc(100% - 90px); cursor: pointer; }
.violation-marker { position: absolute; top: 0; bottom: 0; border-left: 3px solid #dc2626; color: #dc2626;
  font-weight: 700; padding-left: 3px; font-size: 11px; pointer-events: none; white-space: nowrap; }
#legend span { margin-right: 10px; white-space: nowrap; } #legend i { display: inline-block; width: 10px; height: 10px; margin-right: 3px; }
.leading-event { font-family: ui-monospace, monospace; font-size: 12px; }
#event-detail { font-family: ui-monospace, monospace; min-height: 1.4em; }
.plot { margin-bottom: 10px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; }
`

/**
 * The report as one HTML document.
 *
 * @category rendering
 * @since 0.3.0
 */
export const render = (input: ReportInput, assets: ReportAssets): string => {
  const verdict = verdictOf(input.events)
  const data = {
    result: input.result,
    events: input.events,
    leading: leadingEvents(input.events),
    verdict: verdict === undefined ? null : { seq: verdict.seq, kind: verdict.kind, what: verdict.what, detail: verdict.detail },
    series: seriesOf(input.events),
    scenarioText: input.scenarioText,
    command: input.command
  }
  const title = `gpusvm report: ${input.result.scenario} (${input.result.ok ? "ok" : "failed"})`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<style>${inlineCode(assets.uplotCss)}</style>
<style>${STYLE}</style>
</head><body>
<h1>${escapeHtml(title)}</h1>
<section id="summary"><h2>Result</h2></section>
<section id="map"><h2>Address space over time</h2>
<div class="controls"><button id="zoom-whole">whole space</button><button id="zoom-2m">2 MiB window</button><button id="zoom-in">zoom in</button><button id="zoom-out">zoom out</button>
<span class="swatch" style="background:#f59e0b"></span>VMA<span class="swatch" style="background:#a855f7"></span>notifier
<span class="swatch" style="background:#3b82f6"></span>range: system<span class="swatch" style="background:#16a34a"></span>range: VRAM<span class="swatch" style="background:#9ca3af"></span>range: unmapped</div>
<canvas id="map-canvas"></canvas>
<input id="map-time" type="range" min="0" step="1" aria-label="time (event)">
<div id="map-info"></div>
<p>History (time runs down, one row per slice of events; dashed: the time shown above, red: the violation; click to move there):</p>
<canvas id="map-history"></canvas></section>
<section id="timeline"><h2>Actors</h2><div id="legend"></div><div id="lanes"></div><div id="event-detail"></div><div id="leading"></div></section>
<section id="plots"><h2>Metrics</h2><div id="plot-counts" class="plot"></div><div id="plot-retries" class="plot"></div><div id="plot-bytes" class="plot"></div><div id="plot-dma" class="plot"></div></section>
<section><h2>Scenario</h2><p>Made by: <code id="command"></code></p><pre id="scenario-text"></pre></section>
<script>window.GPUSVM_REPORT = ${scriptJson(data)};</script>
<script>${inlineCode(assets.uplotJs)}</script>
<script>${inlineCode(CLIENT_JS)}</script>
</body></html>
`
}
