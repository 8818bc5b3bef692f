import { Html, html } from '../html.ts'

/** The smallest 1, 2 or 5 times a power of ten at or above `v`: round gridline values. */
const niceCeil = (v: number): number => {
  if (v <= 1) return 1
  const power = 10 ** Math.floor(Math.log10(v))
  return ([1, 2, 5, 10].find((m) => m * power >= v) ?? 10) * power
}

const compact = (v: number): string =>
  v >= 1_000_000 ? `${+(v / 1_000_000).toFixed(1)}M` : v >= 10_000 ? `${Math.round(v / 1000)}k` : v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : String(v)

/**
 * One value per minute over the last hour, as server-rendered SVG (the page loads no script and
 * nothing from elsewhere): labelled gridlines, a time axis, bars (counts) or a line (levels),
 * the latest value marked, and the latest and peak values in words for screen readers.
 */
export const minuteChart = (
  title: string,
  unit: string,
  points: { minute: string; value: number | undefined }[],
  kind: 'bars' | 'line',
  height: number,
): Html => {
  const W = 640
  const left = 46
  const right = 10
  const top = 8
  const bottom = 20
  const plotW = W - left - right
  const plotH = height - top - bottom
  const step = plotW / 60
  const values = points.map((p) => p.value).filter((v): v is number => v !== undefined)
  const peak = values.length ? Math.max(...values) : undefined
  const latest = values[values.length - 1]
  const max = niceCeil(peak ?? 0)
  const now = Date.now()
  const y = (v: number) => top + plotH - (v / max) * plotH
  // Minute slot 0 is an hour ago, 59 the current minute.
  const placed = points.flatMap((p) => {
    const slot = 59 - Math.floor((now - Date.parse(p.minute)) / 60_000)
    return p.value === undefined || slot < 0 || slot > 59 ? [] : [{ slot, value: p.value, minute: p.minute }]
  })
  const tip = (p: { minute: string; value: number }) => html`<title>${p.minute.slice(11, 16)} UTC: ${p.value}${unit}</title>`
  const grid = [0, max / 2, max].map(
    (v) => html`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${W - right}" y2="${y(v).toFixed(1)}" stroke="${v === 0 ? '#9aa4b5' : '#e3e7ee'}"/>
<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#5b6474">${compact(v)}${unit}</text>`,
  )
  const ticks = [0, 15, 30, 45, 60].map((ago) => {
    const x = left + (60 - ago) * step
    return html`<text x="${x.toFixed(1)}" y="${height - 5}" text-anchor="${ago === 60 ? 'start' : ago === 0 ? 'end' : 'middle'}" font-size="11" fill="#5b6474">${ago === 0 ? 'now' : `−${ago} min`}</text>`
  })
  let marks: Html[]
  if (kind === 'bars') {
    marks = placed.map((p) => {
      const h = Math.max(p.value > 0 ? 1.5 : 0, (p.value / max) * plotH)
      return html`<rect x="${(left + p.slot * step + 1).toFixed(1)}" y="${(top + plotH - h).toFixed(1)}" width="${(step - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${p.slot === placed[placed.length - 1]?.slot ? '#1f5fbf' : '#7fa6e0'}">${tip(p)}</rect>`
    })
  } else {
    // A line through consecutive minutes; a missing minute (the service was down) breaks it.
    const runs: { slot: number; value: number; minute: string }[][] = []
    for (const p of placed) {
      const run = runs[runs.length - 1]
      const prev = run?.[run.length - 1]
      if (run && prev && p.slot === prev.slot + 1) run.push(p)
      else runs.push([p])
    }
    const cx = (slot: number) => (left + (slot + 0.5) * step).toFixed(1)
    marks = [
      ...runs.map((run) =>
        run.length > 1
          ? html`<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="${run.map((p) => `${cx(p.slot)},${y(p.value).toFixed(1)}`).join(' ')}"/>`
          : '',
      ),
      ...placed.map((p, i) => html`<circle cx="${cx(p.slot)}" cy="${y(p.value).toFixed(1)}" r="${i === placed.length - 1 ? 4 : 2.5}" fill="#1f5fbf">${tip(p)}</circle>`),
    ].filter((m): m is Html => m !== '')
  }
  const words = (v: number | undefined) => (v === undefined ? '—' : `${v}${unit}`)
  const empty = placed.length === 0
    ? html`<text x="${left + plotW / 2}" y="${top + plotH / 2}" text-anchor="middle" font-size="13" fill="#5b6474">no data in the last hour</text>`
    : ''
  return html`<figure class="chart" style="margin:0">
<figcaption><b>${title}</b> <span class="muted">latest <b class="latest">${words(latest)}</b>, peak ${words(peak)}</span></figcaption>
<svg viewBox="0 0 ${W} ${height}" role="img" aria-label="${title} over the last hour: latest ${words(latest)}, peak ${words(peak)}">
${grid}${ticks}${marks}${empty}</svg></figure>`
}
