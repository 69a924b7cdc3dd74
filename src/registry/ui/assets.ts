import { createHash } from 'node:crypto';

/**
 * The catalog's only assets, served by cartorio itself (air-gapped: no CDN, no web font). They are
 * strings in a module rather than files so the single-file bundle carries them with no loader, and
 * they are named by their content hash so a browser may keep them for a year.
 */

const STYLE = String.raw`
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0a5fc4;--chip:#ddf4ff;--chip-fg:#0a3069;--warn:#9a6700;--mono:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--soft:#161b22;--accent:#4493f8;--chip:#12263f;--chip-fg:#9ecbff;--warn:#d29922}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
a:focus-visible,button:focus-visible,input:focus-visible,summary:focus-visible,select:focus-visible{outline:2px solid var(--accent);outline-offset:2px;border-radius:3px}
header.top{border-bottom:1px solid var(--line);background:var(--soft)}
header.top .in{display:flex;align-items:center;gap:12px;max-width:1200px;margin:0 auto;padding:10px 20px}
.brand{display:flex;align-items:center;gap:8px;font-weight:600;color:var(--fg);font-size:17px}.brand img{width:22px;height:22px}
.crumbs{color:var(--muted);font-size:14px;overflow-wrap:anywhere}.crumbs a{color:var(--muted)}.crumbs .sep{margin:0 6px;opacity:.6}
main{max-width:1200px;margin:0 auto;padding:20px}
h1{font-size:24px;margin:4px 0 4px;overflow-wrap:anywhere;font-weight:600}
h2{font-size:18px;margin:28px 0 10px;font-weight:600}
h3{font-size:15px;margin:18px 0 8px;font-weight:600}
.sub{color:var(--muted);margin:0 0 16px}
code,.mono{font-family:var(--mono);font-size:13px}
.search{display:flex;gap:8px;flex-wrap:wrap;align-items:center;margin:16px 0}
.search input[type=search]{flex:1 1 280px;min-width:0;padding:8px 10px;font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:6px}
.search select{padding:8px;font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:6px}
button,.button{padding:7px 14px;font:inherit;font-size:14px;color:var(--fg);background:var(--soft);border:1px solid var(--line);border-radius:6px;cursor:pointer}
button:hover{border-color:var(--muted)}
.hosts{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 14px;padding:0;list-style:none}
.hosts a{display:inline-block;padding:2px 10px;border:1px solid var(--line);border-radius:999px;color:var(--fg);font-size:13px}
.hosts a[aria-current]{background:var(--chip);color:var(--chip-fg);border-color:transparent;font-weight:600}
.hosts .n{color:var(--muted);margin-left:4px}
.table{width:100%;overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid var(--line);vertical-align:top}
tr:last-child td{border-bottom:0}
th{font-size:12px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;background:var(--soft);white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.name{overflow-wrap:anywhere;font-weight:500}
.host{display:inline-block;padding:0 8px;border-radius:999px;background:var(--soft);border:1px solid var(--line);color:var(--muted);font-size:12px;white-space:nowrap}
.tag{display:inline-block;padding:0 8px;margin:1px 4px 1px 0;border-radius:999px;background:var(--chip);color:var(--chip-fg);font-family:var(--mono);font-size:12px}
.muted{color:var(--muted)}
.pager{display:flex;justify-content:space-between;align-items:center;gap:10px;margin:14px 0;color:var(--muted);font-size:14px}
.pager a{padding:5px 12px;border:1px solid var(--line);border-radius:6px}
.empty{padding:24px;text-align:center;color:var(--muted)}
.copy{display:inline-flex;align-items:center;gap:6px;max-width:100%}
.copy button{padding:0 8px;font-size:12px;line-height:20px}
.image{border:1px solid var(--line);border-radius:8px;margin:18px 0;padding:4px 16px 12px}
.image>h3{display:flex;flex-wrap:wrap;align-items:center;gap:6px;margin-top:12px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:10px 0;font-size:14px}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
details{margin:8px 0}
summary{cursor:pointer;color:var(--fg);font-weight:500;font-size:14px;padding:2px 0}
pre.cmd{margin:0;padding:6px 10px;background:var(--soft);border:1px solid var(--line);border-radius:6px;overflow-x:auto;font-size:13px;white-space:pre}
.cmds{display:grid;grid-template-columns:max-content 1fr;gap:6px 12px;align-items:start;margin:8px 0}
.cmds>*{min-width:0}
.cmds .copy{display:flex;gap:6px;align-items:center}.cmds .copy pre{flex:1;min-width:0}.cmds .copy button{flex:none;align-self:stretch}
h4{font-size:12px;margin:12px 0 4px;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.cmds .client{font-size:13px;color:var(--muted);padding-top:6px}
.cmds .note{grid-column:2;font-size:12px;color:var(--muted);margin-top:-4px}
.warn{color:var(--warn)}
.kv td:first-child{font-family:var(--mono);font-size:13px;width:1%;white-space:nowrap;color:var(--muted)}
.kv td:last-child{overflow-wrap:anywhere;word-break:break-word}
footer{max-width:1200px;margin:24px auto;padding:0 20px;color:var(--muted);font-size:13px}
@media (max-width:700px){main{padding:12px}th,td{padding:6px 8px}.hide-narrow{display:none}.cmds{grid-template-columns:1fr}.cmds .note{grid-column:1}dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:6px}}
`;

/**
 * Progressive enhancement only: every page is complete without it. Adds copy buttons to
 * `[data-copy]` and makes the search box filter as you type by fetching the same server page.
 */
const SCRIPT = String.raw`(function(){
"use strict";
function copy(text,button){
  function done(){var old=button.textContent;button.textContent="Copied";setTimeout(function(){button.textContent=old;},1200);}
  if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(text).then(done,function(){fallback(text);done();});return;}
  fallback(text);done();
}
function fallback(text){
  var area=document.createElement("textarea");area.value=text;area.setAttribute("readonly","");
  area.style.position="fixed";area.style.opacity="0";document.body.appendChild(area);area.select();
  try{document.execCommand("copy");}catch(e){}
  document.body.removeChild(area);
}
function addCopyButtons(root){
  root.querySelectorAll("[data-copy]").forEach(function(el){
    if(el.dataset.copyReady)return;el.dataset.copyReady="1";
    var b=document.createElement("button");b.type="button";b.textContent="Copy";
    b.setAttribute("aria-label","Copy "+(el.dataset.copyLabel||"to clipboard"));
    b.addEventListener("click",function(){copy(el.dataset.copy,b);});
    el.appendChild(b);
  });
}
function instantSearch(form){
  var input=form.querySelector("input[type=search]");var timer=0;var asked=0;
  if(!input)return;
  function run(){
    var params=new URLSearchParams();
    new FormData(form).forEach(function(value,key){if(value)params.set(key,String(value));});
    var url=location.pathname+(params.toString()?"?"+params:"");
    var mine=++asked;
    fetch(url,{headers:{"Accept":"text/html"},credentials:"same-origin"}).then(function(r){return r.ok?r.text():Promise.reject(r.status);}).then(function(text){
      if(mine!==asked)return;
      var doc=new DOMParser().parseFromString(text,"text/html");
      var fresh=doc.getElementById("results");var old=document.getElementById("results");
      if(!fresh||!old)return;
      old.replaceWith(fresh);addCopyButtons(fresh);history.replaceState(null,"",url);
    },function(){});
  }
  input.addEventListener("input",function(){clearTimeout(timer);timer=setTimeout(run,120);});
  form.querySelectorAll("select").forEach(function(s){s.addEventListener("change",run);});
}
addCopyButtons(document);
var form=document.getElementById("search");if(form)instantSearch(form);
})();
`;

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0a5fc4"/><path d="M8 10h16v3H8zm0 5h16v3H8zm0 5h11v3H8z" fill="#fff"/></svg>`;

export interface Asset {
  /** The URL path, with the content hash in it. */
  path: string;
  type: string;
  body: Buffer;
  etag: string;
}

function asset(name: string, extension: string, type: string, text: string): Asset {
  const body = Buffer.from(text);
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { path: `/-/${name}.${hash}.${extension}`, type, body, etag: `"${hash}"` };
}

export const STYLESHEET = asset('catalog', 'css', 'text/css; charset=utf-8', STYLE);
export const BEHAVIOUR = asset('catalog', 'js', 'text/javascript; charset=utf-8', SCRIPT);
export const FAVICON = asset('icon', 'svg', 'image/svg+xml', ICON);

/** Every asset by its URL path. */
export const ASSETS = new Map<string, Asset>([STYLESHEET, BEHAVIOUR, FAVICON].map((item) => [item.path, item]));
