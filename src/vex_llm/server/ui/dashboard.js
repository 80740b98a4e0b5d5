// The vex-llm dashboard: polls ui/stats (the body of GET /v1/cache/stats, fetched with the
// browser's own credentials for this page) and draws it. No library, no network but this
// origin. Every figure shown carries data-path (its place in the stats JSON) and data-value
// (the value as received), so what the page shows can be checked against the API.
"use strict";

(() => {
  const POLL_MS = 3000;
  const LIVE_POINTS = 120;
  const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
  const OUTCOMES = [
    ["hits", "Hits", "c-hit"],
    ["coalesced", "Coalesced", "c-coalesced"],
    ["misses", "Misses", "c-miss"],
    ["bypasses", "Bypasses", "c-bypass"],
  ];

  const state = { window: "last_hour", live: [], updates: 0, timer: null };

  // -- formatting ---------------------------------------------------------------------------
  const count = (v) => Math.round(v).toLocaleString("en-US");
  const ratio = (v) => `${(v * 100).toFixed(1)} %`;
  const millis = (v) => {
    if (v === null) return "—";
    if (v < 10) return `${v.toFixed(2)} ms`;
    if (v < 100) return `${v.toFixed(1)} ms`;
    return `${count(v)} ms`;
  };
  const dollars = (v) => {
    if (v === null) return "—";
    const a = Math.abs(v);
    return `$${a >= 100 ? count(v) : a >= 1 ? v.toFixed(2) : v.toFixed(4)}`;
  };
  const span = (s) => {
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  };

  // -- DOM ----------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    for (const child of children) node.append(child);
    return node;
  }

  // One figure: its text, and where it comes from. An absent field (a feature this proxy
  // does not have) shows a dash and claims nothing.
  function figure(tag, path, value, format, attrs) {
    const node = el(tag, attrs);
    if (value === undefined) {
      node.append("—");
      node.classList.add("absent");
      return node;
    }
    node.dataset.path = JSON.stringify(path);
    node.dataset.value = JSON.stringify(value);
    node.append(value === null ? "—" : format(value));
    return node;
  }

  // -- the stats as views -------------------------------------------------------------------
  // Both kinds of answer (admin: every tenant; tenant key: its own) as the same shape:
  // per window a total and a list of tenants, each with its figures and their JSON path.
  function views(stats) {
    if (typeof stats.tenant === "string") {
      const own = (fig, path) => ({ name: stats.tenant, fig, path });
      return {
        scope: `Tenant ${stats.tenant}`,
        admin: false,
        windows: {
          last_hour: {
            seconds: stats.last_hour.seconds,
            total: own(stats.last_hour, ["last_hour"]),
            tenants: [own(stats.last_hour, ["last_hour"])],
          },
          since_start: {
            seconds: stats.uptime_seconds,
            total: own(stats, []),
            tenants: [own(stats, [])],
          },
        },
        quotas: [own(stats, [])],
      };
    }
    const list = (tenants, base) =>
      Object.keys(tenants).map((name) => ({ name, fig: tenants[name], path: [...base, name] }));
    return {
      scope: "All tenants (admin key)",
      admin: true,
      windows: {
        last_hour: {
          seconds: stats.last_hour.seconds,
          total: { name: "all", fig: stats.last_hour.all_tenants, path: ["last_hour", "all_tenants"] },
          tenants: list(stats.last_hour.tenants, ["last_hour", "tenants"]),
        },
        since_start: {
          seconds: stats.uptime_seconds,
          total: { name: "all", fig: stats.all_tenants, path: ["all_tenants"] },
          tenants: list(stats.tenants, ["tenants"]),
        },
      },
      // Callers without a valid key are counted under _anonymous: they have no quota.
      quotas: list(stats.tenants, ["tenants"]).filter((t) => t.name !== "_anonymous"),
    };
  }

  // -- charts -------------------------------------------------------------------------------
  // A ring of the answers by outcome, hit ratio in the middle.
  function donut(fig, path) {
    const total = OUTCOMES.reduce((sum, [key]) => sum + (fig[key] || 0), 0);
    const r = 40;
    const length = 2 * Math.PI * r;
    const ring = svg("svg", { viewBox: "0 0 100 100", class: "donut", role: "img" });
    ring.append(svg("circle", { cx: 50, cy: 50, r, class: "track" }));
    let offset = 0;
    for (const [key, , css] of OUTCOMES) {
      const part = total ? (fig[key] || 0) / total : 0;
      if (part <= 0) continue;
      ring.append(
        svg("circle", {
          cx: 50, cy: 50, r, class: `slice ${css}`,
          "stroke-dasharray": `${part * length} ${length}`,
          "stroke-dashoffset": -offset * length,
          transform: "rotate(-90 50 50)",
        }),
      );
      offset += part;
    }
    const label = svg("text", { x: 50, y: 55, "text-anchor": "middle", class: "donut-label" });
    label.append(fig.hit_rate === undefined ? "—" : ratio(fig.hit_rate));
    ring.append(label);
    ring.setAttribute("aria-label", `hit ratio ${label.textContent}`);
    const legend = el("ul", { class: "legend" });
    for (const [key, name, css] of OUTCOMES) {
      legend.append(
        el("li", {}, el("i", { class: css }), `${name} `, figure("b", [...path, key], fig[key], count)),
      );
    }
    return el("div", { class: "donut-box" }, ring, legend);
  }

  // Answers by outcome as one stacked bar, scaled to `scale` answers.
  function stackedBar(fig, scale) {
    const bar = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "stack" });
    let x = 0;
    for (const [key, name, css] of OUTCOMES) {
      const w = scale ? (100 * (fig[key] || 0)) / scale : 0;
      if (w <= 0) continue;
      const rect = svg("rect", { x, y: 0, width: w, height: 10, class: css });
      rect.append(svg("title", {}, document.createTextNode(`${name}: ${count(fig[key])}`)));
      bar.append(rect);
      x += w;
    }
    return bar;
  }

  // A meter: `used` of `limit`, filled from the left.
  function meter(used, limit, css) {
    const part = limit > 0 ? Math.min(1, Math.max(0, used / limit)) : 0;
    const bar = svg("svg", { viewBox: "0 0 100 8", preserveAspectRatio: "none", class: "meter" });
    bar.append(svg("rect", { x: 0, y: 0, width: 100, height: 8, class: "track" }));
    bar.append(svg("rect", { x: 0, y: 0, width: 100 * part, height: 8, class: css }));
    return bar;
  }

  // Requests per second and hit ratio between this page's polls.
  function liveChart(points) {
    const W = 600;
    const H = 120;
    const box = el("section", { class: "card live" }, el("h2", {}, "Live: requests per second and hit ratio, since this page opened"));
    if (points.length < 2) {
      box.append(el("p", { class: "note" }, "Collecting: the chart starts with the second update."));
      return box;
    }
    const rates = [];
    for (let i = 1; i < points.length; i++) {
      const a = points[i - 1];
      const b = points[i];
      const dt = Math.max(0.001, b.t - a.t);
      const lookups = b.lookups - a.lookups;
      rates.push({ rps: Math.max(0, (b.requests - a.requests) / dt), hit: lookups > 0 ? (b.hits - a.hits) / lookups : null });
    }
    const top = Math.max(1, ...rates.map((p) => p.rps));
    const x = (i) => (rates.length === 1 ? W : (i * W) / (rates.length - 1));
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "line-chart", role: "img" });
    for (const f of [0.25, 0.5, 0.75]) chart.append(svg("line", { x1: 0, x2: W, y1: H * f, y2: H * f, class: "grid" }));
    const rps = rates.map((p, i) => `${x(i).toFixed(1)},${(H - (p.rps / top) * (H - 4)).toFixed(1)}`);
    chart.append(svg("polyline", { points: rps.join(" "), class: "line rps" }));
    const hits = rates.map((p, i) => (p.hit === null ? null : `${x(i).toFixed(1)},${(H - p.hit * (H - 4)).toFixed(1)}`)).filter(Boolean);
    if (hits.length) chart.append(svg("polyline", { points: hits.join(" "), class: "line hit" }));
    chart.setAttribute("aria-label", "requests per second and hit ratio over time");
    const last = rates[rates.length - 1];
    box.append(
      chart,
      el("p", { class: "axis" },
        el("span", { class: "key rps" }, `requests/s (top ${top.toFixed(1)}, now ${last.rps.toFixed(1)})`),
        el("span", { class: "key hit" }, `hit ratio (0–100 %, now ${last.hit === null ? "—" : ratio(last.hit)})`)),
    );
    return box;
  }

  // -- sections -----------------------------------------------------------------------------
  function tile(title, body, note) {
    return el("div", { class: "tile" }, el("h3", {}, title), body, note ? el("p", { class: "note" }, note) : null);
  }

  function tiles(view) {
    const { fig, path } = view.total;
    const lat = fig.latency_ms || {};
    return el("div", { class: "tiles" },
      el("div", { class: "tile wide" }, el("h3", {}, "Hit ratio"), donut(fig, path),
        el("p", { class: "note" }, "Hit ratio ", figure("b", [...path, "hit_rate"], fig.hit_rate, ratio),
          " = hits / (hits + misses + coalesced)")),
      tile("Requests", figure("p", [...path, "requests"], fig.requests, count, { class: "big" }),
        el("span", {}, "errors ", figure("b", [...path, "errors"], fig.errors, count))),
      tile("Coalesced", figure("p", [...path, "coalesced"], fig.coalesced, count, { class: "big" }),
        "joined an identical call in flight"),
      tile("Tokens saved", figure("p", [...path, "tokens_saved"], fig.tokens_saved, count, { class: "big" })),
      tile("Dollars saved", figure("p", [...path, "dollars_saved"], fig.dollars_saved, dollars, { class: "big good" }),
        el("span", {}, "spent ", figure("b", [...path, "dollars_spent"], fig.dollars_spent, dollars))),
      el("div", { class: "tile wide" }, el("h3", {}, "Latency"), el("div", { class: "pair" },
        el("div", {}, el("span", { class: "label" }, "p50"), figure("p", [...path, "latency_ms", "p50"], lat.p50, millis, { class: "big" })),
        el("div", {}, el("span", { class: "label" }, "p99"), figure("p", [...path, "latency_ms", "p99"], lat.p99, millis, { class: "big" }))),
        el("p", { class: "note" }, "interpolated within the duration histogram's buckets")),
    );
  }

  function row(entry, fig, path, level, scale) {
    const lat = fig.latency_ms || {};
    const name = level === 0 ? el("th", { scope: "row" }, entry) : el("td", { class: "model" }, entry);
    return el("tr", { class: level === 0 ? "tenant" : "model-row" },
      name,
      figure("td", [...path, "requests"], fig.requests, count),
      el("td", { class: "bar" }, stackedBar(fig, scale), figure("span", [...path, "hit_rate"], fig.hit_rate, ratio)),
      figure("td", [...path, "hits"], fig.hits, count),
      figure("td", [...path, "coalesced"], fig.coalesced, count),
      figure("td", [...path, "misses"], fig.misses, count),
      figure("td", [...path, "tokens_saved"], fig.tokens_saved, count),
      figure("td", [...path, "dollars_saved"], fig.dollars_saved, dollars),
      figure("td", [...path, "dollars_spent"], fig.dollars_spent, dollars),
      figure("td", [...path, "latency_ms", "p50"], lat.p50, millis),
      figure("td", [...path, "latency_ms", "p99"], lat.p99, millis),
      figure("td", [...path, "errors"], fig.errors, count),
    );
  }

  function table(view, admin) {
    const answers = (f) => OUTCOMES.reduce((sum, [key]) => sum + (f[key] || 0), 0);
    // The admin's first row: all tenants together, per model.
    const rows = admin ? [{ ...view.total, name: "All tenants" }, ...view.tenants] : view.tenants;
    let scale = 0;
    for (const t of rows) {
      for (const m of Object.values(t.fig.models || {})) scale = Math.max(scale, answers(m));
      scale = Math.max(scale, answers(t.fig));
    }
    const head = ["Tenant / model", "Requests", "Answers by outcome · hit ratio", "Hits", "Coalesced",
      "Misses", "Tokens saved", "$ saved", "$ spent", "p50", "p99", "Errors"];
    const body = el("tbody");
    for (const t of rows) {
      body.append(row(t.name, t.fig, t.path, 0, scale));
      for (const [model, fig] of Object.entries(t.fig.models || {})) {
        body.append(row(model, fig, [...t.path, "models", model], 1, scale));
      }
    }
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: head.length, class: "note" }, "No requests yet.")));
    return el("section", { class: "card" },
      el("h2", {}, "By tenant and model"),
      el("div", { class: "scroll" },
        el("table", {}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))), body)),
      el("p", { class: "legend-line" }, ...OUTCOMES.map(([, name, css]) => el("span", {}, el("i", { class: css }), name))),
    );
  }

  function budgetLine(label, part, path) {
    if (part === undefined || part === null) {
      return el("div", { class: "quota" }, el("span", { class: "label" }, label), el("span", { class: "off" }, "not configured"));
    }
    return el("div", { class: "quota" },
      el("span", { class: "label" }, label),
      meter(part.spent_usd, part.limit_usd, part.spent_usd >= part.limit_usd ? "over" : "spent"),
      el("span", {}, figure("b", [...path, "spent_usd"], part.spent_usd, dollars), " of ",
        figure("b", [...path, "limit_usd"], part.limit_usd, dollars)),
    );
  }

  function limitLine(label, part, path) {
    if (part === undefined || part === null) {
      return el("div", { class: "quota" }, el("span", { class: "label" }, label), el("span", { class: "off" }, "not configured"));
    }
    const left = part.limit > 0 ? part.remaining / part.limit : 0;
    return el("div", { class: "quota" },
      el("span", { class: "label" }, label),
      meter(part.remaining, part.limit, left < 0.1 ? "over" : "headroom"),
      el("span", {}, figure("b", [...path, "remaining"], part.remaining, count), " of ",
        figure("b", [...path, "limit"], part.limit, count), " left, resets in ",
        figure("b", [...path, "reset_seconds"], part.reset_seconds, (s) => `${Math.ceil(s)} s`)),
    );
  }

  function quotas(list) {
    const box = el("section", { class: "card" }, el("h2", {}, "Spend against budget · rate-limit headroom"));
    const grid = el("div", { class: "quotas" });
    for (const t of list) {
      const budget = t.fig.budget || {};
      const limits = t.fig.limits || {};
      grid.append(el("div", { class: "quota-card" },
        el("h3", {}, t.name),
        budgetLine("Budget today", budget.daily, [...t.path, "budget", "daily"]),
        budgetLine("Budget this month", budget.monthly, [...t.path, "budget", "monthly"]),
        limitLine("Requests / min", limits.requests, [...t.path, "limits", "requests"]),
        limitLine("Tokens / min", limits.tokens, [...t.path, "limits", "tokens"]),
      ));
    }
    if (!list.length) grid.append(el("p", { class: "note" }, "No tenants yet."));
    box.append(grid);
    return box;
  }

  function windowSection(name, view, admin) {
    const title = name === "last_hour"
      ? `Last hour (covers ${span(view.seconds)})`
      : `Since start (${span(view.seconds)} ago)`;
    const section = el("section", { class: "window", "data-window": name }, el("h2", { class: "window-title" }, title), tiles(view), table(view, admin));
    section.hidden = name !== state.window;
    return section;
  }

  // -- the loop -----------------------------------------------------------------------------
  function render(stats) {
    const v = views(stats);
    const total = v.windows.since_start.total.fig;
    state.live.push({
      t: performance.now() / 1000,
      requests: total.requests || 0,
      hits: total.hits || 0,
      lookups: (total.hits || 0) + (total.misses || 0) + (total.coalesced || 0),
    });
    if (state.live.length > LIVE_POINTS) state.live.shift();
    document.getElementById("scope").textContent = v.scope;
    const app = document.getElementById("app");
    app.replaceChildren(
      windowSection("last_hour", v.windows.last_hour, v.admin),
      windowSection("since_start", v.windows.since_start, v.admin),
      liveChart(state.live),
      quotas(v.quotas),
    );
    state.updates += 1;
    app.dataset.admin = String(v.admin);
    app.dataset.updates = String(state.updates);
    app.dataset.ready = "true";
  }

  function say(text, bad) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  }

  async function poll() {
    try {
      const response = await fetch("ui/stats", {
        credentials: "same-origin",
        cache: "no-store",
        headers: { accept: "application/json" },
      });
      if (response.status === 401) {
        say("This key may not see the dashboard (401). Reload the page to enter another key.", true);
      } else if (!response.ok) {
        say(`Update failed: HTTP ${response.status}; retrying.`, true);
      } else {
        render(await response.json());
        say(`Updated ${new Date().toLocaleTimeString("en-GB")} · every ${POLL_MS / 1000} s`, false);
      }
    } catch (err) {
      say(`Update failed: ${err.message}; retrying.`, true);
    }
    state.timer = setTimeout(poll, POLL_MS);
  }

  function choose(name) {
    state.window = name;
    for (const button of document.querySelectorAll("button[data-window]")) {
      button.setAttribute("aria-pressed", String(button.dataset.window === name));
    }
    for (const section of document.querySelectorAll("section.window")) {
      section.hidden = section.dataset.window !== name;
    }
  }

  for (const button of document.querySelectorAll("button[data-window]")) {
    button.addEventListener("click", () => choose(button.dataset.window));
  }
  poll();
})();
