/**
 * Renders the Grafana dashboards of ops/grafana/ to PNG from their JSON, with
 * real data from a Prometheus, in Debian's Chromium: for the screenshots in
 * docs/operations.md, since Grafana itself cannot be installed on the build
 * machine. It lays panels out by their gridPos and draws time series with
 * uPlot, stats, state timelines, tables and bar gauges in a plain way: the
 * queries, titles, units, thresholds and layout are the dashboard's, the
 * look is not Grafana's.
 *
 *   npx tsx ops/grafana/render.ts --prometheus http://127.0.0.1:9090 --out docs/img/operations
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ConfigError, createCommand } from "@paylane/protocol/service";
import { launchChromium } from "../../test/support/browser.ts";

const root = resolve(import.meta.dirname, "../..");

interface Target {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
}
interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  fieldConfig?: {
    defaults?: {
      unit?: string;
      thresholds?: { steps: { color: string; value: number | null }[] };
      mappings?: { options: Record<string, { text: string; color: string }> }[];
      min?: number;
      max?: number;
    };
  };
}
interface Dashboard {
  title: string;
  panels: Panel[];
}
interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

const command = createCommand({
  name: "render",
  packageJson: new URL("../package.json", import.meta.url),
  errorPrefix: "render:",
  helpCommand: "npx tsx ops/grafana/render.ts --help",
  description:
    "Renders each dashboard of ops/grafana/ to a PNG from its JSON, with data queried from a Prometheus, in Debian's " +
    "Chromium (Grafana is not installable on the build machine). Variables: $site and $device are the options; " +
    "$__rate_interval is 4 scrape intervals.",
  examples: [
    {
      command: "npx tsx ops/grafana/render.ts --prometheus http://127.0.0.1:9090 --out docs/img/operations",
      does: "the five dashboards, the last 15 minutes, for site demo and kiosk k1",
    },
  ],
})
  .requiredOption("--prometheus <url>", "the Prometheus to query (npm start -- --prometheus prints it)")
  .option("--out <dir>", "where the PNGs go", "docs/img/operations")
  .option("--site <site>", "the $site variable", "demo")
  .option("--device <device>", "the $device variable", "k1")
  .option("--minutes <n>", "the time range, up to now", "15")
  .option("--step <seconds>", "the query step (and $__interval)", "5")
  .parse();
const o = command.opts<{
  prometheus: string;
  out: string;
  site: string;
  device: string;
  minutes: string;
  step: string;
}>();

const end = Math.floor(Date.now() / 1000);
const start = end - Number(o.minutes) * 60;
const step = Number(o.step);
if (!(step > 0) || !(Number(o.minutes) > 0)) throw new ConfigError("--minutes and --step must be positive numbers");

function substitute(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", `${step * 4}s`)
    .replaceAll("$__interval", `${step}s`)
    .replace(/\$\{?site\}?/g, o.site)
    .replace(/\$\{?device\}?/g, o.device);
}

async function query(expr: string): Promise<Series[]> {
  const url = new URL("/api/v1/query_range", o.prometheus);
  url.search = new URLSearchParams({
    query: substitute(expr),
    start: String(start),
    end: String(end),
    step: String(step),
  }).toString();
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: Series[] } };
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data!.result;
}

const legend = (format: string | undefined, metric: Record<string, string>) =>
  !format || format === "__auto"
    ? Object.entries(metric)
        .filter(([k]) => k !== "__name__")
        .map(([k, v]) => `${k}=${v}`)
        .join(", ") ||
      (metric.__name__ ?? "value")
    : format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? "");

async function renderHtml(file: string, d: Dashboard): Promise<string> {
  const panels = [];
  for (const p of d.panels) {
    const series = [];
    for (const t of p.targets ?? []) {
      for (const s of await query(t.expr)) series.push({ name: legend(t.legendFormat, s.metric), values: s.values });
    }
    panels.push({ ...p, series });
  }
  const uplot = await readFile(join(root, "node_modules/uplot/dist/uPlot.iife.min.js"), "utf8");
  const css = await readFile(join(root, "node_modules/uplot/dist/uPlot.min.css"), "utf8");
  const data = JSON.stringify({ title: d.title, file, panels, start, end, site: o.site, device: o.device });
  return `<!doctype html><html><head><meta charset="utf-8"><style>${css}
body{margin:0;background:#111217;color:#ccccdc;font:13px system-ui,sans-serif;width:1600px}
h1{font-size:18px;margin:12px 16px 2px} .sub{margin:0 16px 8px;color:#8e8e9e;font-size:12px}
.grid{position:relative;margin:0 8px}
.p{position:absolute;box-sizing:border-box;background:#181b1f;border:1px solid #24262b;border-radius:3px;padding:6px 8px;overflow:hidden}
.p h2{font-size:13px;margin:0 0 4px;font-weight:500;color:#d8d9da}
.row{background:none;border:none;font-size:15px;font-weight:600;padding:4px 0}
.stat{display:flex;align-items:center;justify-content:center;font-size:34px;font-weight:600;height:calc(100% - 22px);border-radius:2px}
.tl{display:flex;align-items:center;margin:3px 0;font-size:11px} .tl .n{width:110px;flex:none;overflow:hidden;white-space:nowrap}
.tl .bar{display:flex;flex:1;height:16px} .tl .bar div{height:100%}
table{border-collapse:collapse;font-size:11px;width:100%} td,th{border-bottom:1px solid #2c2e33;padding:2px 4px;text-align:left}
.bg{display:flex;align-items:center;margin:4px 0;font-size:11px}.bg .n{width:200px;flex:none}.bg .b{height:14px;border-radius:2px}
.none{color:#8e8e9e;font-size:12px;padding-top:20px;text-align:center}
.u-legend{font-size:11px}.u-legend .u-marker{width:10px;height:3px}
</style><script>${uplot}</script></head><body><div id="root"></div><script>
const D=${data};
const COLORS=["#73bf69","#f2cc0c","#5794f2","#ff9830","#f2495c","#b877d9","#8ab8ff","#ffcb7d","#96d98d","#ca95e5"];
const NAMED={green:"#73bf69",red:"#f2495c",orange:"#ff9830",blue:"#5794f2",yellow:"#fade2a",purple:"#b877d9"};
const col=c=>NAMED[c]??c;
function fmt(v,unit){if(v==null||isNaN(v))return"–";const a=Math.abs(v);if(v===0)return unit==="s"?"0 s":"0";
 if(unit==="s"){if(a>=3600)return(v/3600).toFixed(1)+" h";if(a>=60)return(v/60).toFixed(1)+" min";if(a>=1)return v.toFixed(1)+" s";return(v*1000).toFixed(a>=0.01?0:2)+" ms"}
 if(unit==="percentunit")return(v*100).toFixed(1)+"%";
 if(unit==="bytes"||unit==="Bps"){const u=["B","KiB","MiB","GiB"];let i=0,x=a;while(x>=1024&&i<3){x/=1024;i++}return(v<0?"-":"")+x.toFixed(1)+" "+u[i]+(unit==="Bps"?"/s":"")}
 const s=a>=1e6?(v/1e6).toFixed(1)+"M":a>=1e3?(v/1e3).toFixed(1)+"k":Number.isInteger(v)?String(v):v.toFixed(a<1?3:1);
 return unit==="ops"||unit==="reqps"?s+"/s":s}
function threshold(p,v){const st=p.fieldConfig?.defaults?.thresholds?.steps;if(!st)return null;let c=st[0].color;for(const s of st)if(s.value!=null&&v>=s.value)c=s.color;return col(c)}
function mapping(p,v){for(const m of p.fieldConfig?.defaults?.mappings??[]){const o=m.options[String(v)];if(o)return o}return null}
const root=document.getElementById("root");
root.innerHTML='<h1>'+D.title+'</h1><div class="sub">ops/grafana/'+D.file+' rendered from its JSON with live data ('+new Date(D.start*1000).toISOString().slice(11,16)+'–'+new Date(D.end*1000).toISOString().slice(11,16)+' UTC, site='+D.site+', device='+D.device+'); not Grafana\\'s look</div>';
const grid=document.createElement("div");grid.className="grid";root.appendChild(grid);
const CW=(1600-16)/24,RH=30;let maxY=0;
for(const p of D.panels){const g=p.gridPos;maxY=Math.max(maxY,(g.y+g.h)*RH);
 const el=document.createElement("div");el.className="p"+(p.type==="row"?" row":"");
 Object.assign(el.style,{left:g.x*CW+"px",top:g.y*RH+"px",width:g.w*CW-4+"px",height:g.h*RH-4+"px"});
 grid.appendChild(el);if(p.type==="row"){el.textContent=p.title.replaceAll("$site",D.site).replaceAll("$device",D.device);continue}
 el.innerHTML="<h2>"+p.title+"</h2>";const unit=p.fieldConfig?.defaults?.unit;const S=p.series;
 const last=s=>{for(let i=s.values.length-1;i>=0;i--){const v=Number(s.values[i][1]);if(!isNaN(v))return v}return null};
 if(!S.length){el.insertAdjacentHTML("beforeend",'<div class="none">No data</div>');continue}
 if(p.type==="stat"){const s=S[0];const v=last(s);const m=mapping(p,v);
  const text=p.options?.textMode==="name"?s.name:m?m.text:fmt(v,unit);
  const ov=(p.fieldConfig?.overrides??[]).find(x=>x.matcher?.id==="byName"&&x.matcher.options===s.name)?.properties?.find(x=>x.id==="color")?.value?.fixedColor;
  const bg=m?col(m.color):ov?col(ov):threshold(p,v)??col(p.fieldConfig?.defaults?.color?.fixedColor??"green");
  el.insertAdjacentHTML("beforeend",'<div class="stat" style="background:'+bg+';color:#111">'+text+'</div>');continue}
 if(p.type==="state-timeline"){for(const s of S){const row=document.createElement("div");row.className="tl";
  row.innerHTML='<div class="n">'+s.name+'</div>';const bar=document.createElement("div");bar.className="bar";
  const n=s.values.length;for(const [,v] of s.values){const m=mapping(p,v);const c=m?col(m.color):Number(v)===1?COLORS[S.indexOf(s)%COLORS.length]:"#2c2e33";
   bar.insertAdjacentHTML("beforeend",'<div style="width:'+100/n+'%;background:'+c+'"></div>')}
  row.appendChild(bar);el.appendChild(row)}continue}
 if(p.type==="table"){el.insertAdjacentHTML("beforeend","<table>"+S.map(s=>"<tr><td>"+s.name+"</td></tr>").join("")+"</table>");continue}
 if(p.type==="bargauge"){const max=p.fieldConfig?.defaults?.max??1;for(const s of S){const v=last(s);
  el.insertAdjacentHTML("beforeend",'<div class="bg"><div class="n">'+s.name+'</div><div class="b" style="width:'+Math.max(2,Math.min(1,v/max)*300)+'px;background:'+(threshold(p,v)??"#73bf69")+'"></div>&nbsp;'+fmt(v,unit)+'</div>')}continue}
 const xs=[...new Set(S.flatMap(s=>s.values.map(v=>v[0])))].sort((a,b)=>a-b);
 const data=[xs,...S.map(s=>{const m=new Map(s.values.map(([t,v])=>[t,Number(v)]));return xs.map(t=>Number.isFinite(m.get(t))?m.get(t):null)})];
 const box=document.createElement("div");el.appendChild(box);
 new uPlot({width:g.w*CW-22,height:g.h*RH-58,legend:{show:true,live:false},cursor:{show:false},
  axes:[{stroke:"#8e8e9e",grid:{stroke:"#24262b"}},{stroke:"#8e8e9e",grid:{stroke:"#24262b"},size:80,values:(u,v)=>v.map(x=>fmt(x,unit))}],
  series:[{},...S.map((s,i)=>({label:s.name,stroke:COLORS[i%COLORS.length],width:1.5,spanGaps:true,points:{show:false}}))]},data,box)}
grid.style.height=maxY+"px";
</script></body></html>`;
}

async function main(): Promise<void> {
  const dir = join(root, "ops/grafana");
  const out = resolve(o.out);
  await mkdir(out, { recursive: true });
  const browser = await launchChromium();
  try {
    for (const file of [
      "fleet-overview.json",
      "kiosk-detail.json",
      "ingest-delivery.json",
      "payments-exposure.json",
      "api.json",
    ]) {
      const d = JSON.parse(await readFile(join(dir, file), "utf8")) as Dashboard;
      const html = await renderHtml(file, d);
      const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
      await page.setContent(html, { waitUntil: "load" });
      const png = join(out, file.replace(/\.json$/, ".png"));
      await writeFile(png, await page.screenshot({ fullPage: true }));
      await page.close();
      console.log(`${png}`);
    }
  } finally {
    await browser.close();
  }
}

main().catch((err: Error) => {
  console.error(`render: ${err.message}`);
  process.exit(1);
});
