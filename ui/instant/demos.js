// The component: controls and charts of a demo computed in the browser. Python (ui/instant.py) sends the data
// once per rerun: the demo's kind, its controls (the settings form's fields, each with its current value) and
// the numbers it needs. Every input event recomputes and redraws here, while the pointer moves; the end of a drag
// (the "change" event) sends the values back, so the URL, the presenter's view and the other panels follow.

const PRESENTER_SCALE = 1.4; // presenter mode: charts laid out 1.4× narrower, then scaled up (instant.css)

function fmt(x) {
  return String(+Number(x).toPrecision(6)); // like Python's %g for the values the sliders take
}

const RENDERERS = {
  next_token(d, v, width) {
    const probs = samplingDistribution(d.logits, v.temperature, v.top_k, v.top_p);
    const raw = samplingDistribution(d.logits, 1, 0, 1);
    const ranked = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || d.logits[b] - d.logits[a] || a - b);
    const shown = ranked.slice(0, v.shown);
    const best = order(raw)[0];
    const settings = `T = ${fmt(v.temperature)}, top-k = ${v.top_k > 0 ? v.top_k : "all"}, top-p = ${fmt(v.top_p)}`;
    const label = (id) => d.labels[id] ?? `#${id}`;
    return (
      `<p class="caption">${esc(samplingSummary(d.logits, v.temperature, v.top_k, v.top_p))}</p>` +
      `<p>Most likely next token: <b>${esc(label(best))}</b> (p = ${raw[best].toFixed(3)}, id ${best})</p>` +
      barChart({
        title: `Next-token distribution after the prompt (${d.model})`,
        xTitle: "probability of being the next token",
        yTitle: "token",
        labels: shown.map(label),
        series: [
          { name: "raw model (T = 1)", values: shown.map((i) => raw[i]), color: COLORS.muted },
          { name: `sampling (${settings})`, values: shown.map((i) => probs[i]), color: COLORS.accent, text: true },
        ],
        width,
        xMax: Math.min(1, Math.max(0.01, ...shown.map((i) => probs[i]), ...shown.map((i) => raw[i])) * 1.25),
      })
    );
  },

  kl_sweep(d, v, width) {
    const c = d.candidates;
    const point = optimumAt(c, v.beta);
    const ref = optimumAt(c, Infinity).policy;
    const expect = (p, values) => p.reduce((s, x, i) => s + x * values[i], 0);
    const metric = (label, value, delta, help) =>
      `<div class="metric" title="${esc(help)}"><div class="label">${esc(label)}</div><div class="number">${esc(value)}</div>` +
      (delta ? `<div class="delta ${delta.startsWith("-") || delta.startsWith("−") ? "down" : "up"}">${esc(delta)}</div>` : "") +
      "</div>";
    const sign = (x, text) => (x >= 0 ? "+" : "−") + text(Math.abs(x));
    const top = Array.from(ref.keys()).sort((a, b) => Math.max(ref[b], point.policy[b]) - Math.max(ref[a], point.policy[a]) || a - b).slice(0, d.shown);
    const clip = (t) => (t.length <= 70 ? t : t.slice(0, 67) + "…");
    const kls = d.frontier.kl.map((k) => Math.max(k, d.kl_floor));
    return (
      `<div class="metrics">` +
      metric("KL (nats)", (+point.kl.toPrecision(3)).toString(), "", "KL(π* ‖ π_ref) over the candidates, nats per answer") +
      metric("RM score", point.expectedProxy.toFixed(2), sign(point.expectedProxy - expect(ref, c.proxy), (x) => x.toFixed(2)), "E_π*[reward-model score], logit units; the delta is vs π_ref") +
      metric("Correct", `${Math.round(100 * point.expectedTrue)}%`, sign(point.expectedTrue - expect(ref, c.true), (x) => `${Math.round(100 * x)}%`), "P_π*(answer is right): the true reward; the delta is vs π_ref") +
      metric("Length", point.expectedLength.toFixed(1), "", "E_π*[answer length], tokens") +
      metric("Polite", point.expectedPadding.toFixed(2), "", "E_π*[polite phrases per answer]") +
      `</div>` +
      barChart({
        title: `π_ref vs π* at β = ${fmt(v.beta)} (${c.texts.length} distinct answers, top ${top.length} shown)`,
        xTitle: "probability of the answer",
        yTitle: "candidate answer",
        labels: top.map((i, n) => `${n + 1}. ${c.true[i] ? "✓" : "✗"} ${clip(c.texts[i])}`),
        series: [
          { name: "π_ref (SFT model)", values: top.map((i) => ref[i]), color: COLORS.muted },
          { name: "π* (KL-regularised optimum)", values: top.map((i) => point.policy[i]), color: COLORS.highlight, text: true },
        ],
        width,
        xMax: 1.12,
      }) +
      lineChart({
        title: "Reward vs KL frontier, β from 1000 (left) to 0.001 (right)",
        xTitle: `KL(π* ‖ π_ref) (nats per answer, log scale; below ${fmt(d.kl_floor)} drawn at ${fmt(d.kl_floor)})`,
        yTitle: "E[reward-model score] (logit units)",
        y2Title: "share of correct answers",
        width,
        height: 420,
        xLog: true,
        xRange: [d.kl_floor, Math.max(d.kl_floor * 10, ...kls)],
        yRange: d.proxy_range,
        y2Range: [-0.03, 1.05],
        y2Format: (t) => `${Math.round(100 * t)}%`,
        series: [
          { name: "reward-model score (proxy)", xs: kls, ys: d.frontier.proxy, color: COLORS.accent, axis: 1 },
          { name: "correct answers (true reward)", xs: kls, ys: d.frontier.true, color: COLORS.green, dash: "2 4", axis: 2 },
        ],
        markers: [
          { name: `current β (proxy): ${point.expectedProxy.toFixed(2)}`, x: Math.max(point.kl, d.kl_floor), y: point.expectedProxy, axis: 1, color: COLORS.highlight },
          { name: `current β (true): ${percent(point.expectedTrue, 0)}`, x: Math.max(point.kl, d.kl_floor), y: point.expectedTrue, axis: 2, color: COLORS.highlight, open: true },
        ],
      })
    );
  },

  dpo_loss(d, v, width) {
    const betas = [...d.betas.filter((b) => b !== v.beta), v.beta];
    const series = [];
    betas.forEach((beta, n) => {
      const live = beta === v.beta;
      const color = live ? COLORS.highlight : SERIES[n % SERIES.length];
      const name = live ? `β = ${fmt(beta)} (the slider)` : `β = ${fmt(beta)}`;
      series.push({ name: `loss, ${name}`, xs: d.margins, ys: d.margins.map((m) => dpoLoss(m, beta)), color, axis: 1, width: live ? 3.2 : 2 });
      series.push({ name: `gradient weight, ${name}`, xs: d.margins, ys: d.margins.map((m) => dpoGradientWeight(m, beta)), color, dash: "2 4", axis: 2, width: live ? 3.2 : 2 });
    });
    const maxLoss = Math.max(...series.filter((s) => s.axis === 1).map((s) => Math.max(...s.ys)));
    return lineChart({
      title: "DPO loss (solid) and gradient weight σ(−β·margin) (dotted) for several β",
      xTitle: "margin = log-ratio of chosen − log-ratio of rejected (nats)",
      yTitle: "loss −log σ(β·margin) (nats)",
      y2Title: "gradient weight σ(−β·margin) (0–1)",
      width,
      height: 460,
      xRange: [d.margins[0], d.margins[d.margins.length - 1]],
      yRange: [0, Math.max(1, maxLoss * 1.05)],
      y2Range: [0, 1.05],
      series,
      vline: 0,
    });
  },
};

function parseControl(control, input) {
  if (control.kind === "choice") return control.choices[Number(input.value)];
  const value = Number(input.value);
  return control.integer ? Math.round(value) : value;
}

function controlHtml(control) {
  const id = `instant-${control.name}`;
  const help = control.help ? ` title="${esc(control.help)}"` : "";
  let input;
  if (control.kind === "number") {
    input = `<input id="${id}" type="number" min="${control.lo}" max="${control.hi}" step="${control.step}" aria-label="${esc(control.label)}">`;
  } else {
    const [lo, hi, step] = control.kind === "choice" ? [0, control.choices.length - 1, 1] : [control.lo, control.hi, control.step];
    input = `<input id="${id}" type="range" min="${lo}" max="${hi}" step="${step}" aria-label="${esc(control.label)}">`;
  }
  return `<label class="control" for="${id}"${help}><span class="name">${esc(control.label)}</span><span class="shown"></span>${input}</label>`;
}

function show(root) {
  const { data, values } = root;
  root.querySelectorAll(".control").forEach((el, n) => {
    const control = data.controls[n];
    const value = values[control.name];
    const input = el.querySelector("input");
    if (document.activeElement !== input || input.type !== "number") {
      input.value = control.kind === "choice" ? String(control.choices.indexOf(value)) : String(value);
    }
    el.querySelector(".shown").textContent = control.kind === "choice" ? control.labels[control.choices.indexOf(value)] : fmt(value);
    input.setAttribute("aria-valuetext", el.querySelector(".shown").textContent);
  });
  const scale = data.presenter ? PRESENTER_SCALE : 1;
  const width = Math.max(320, Math.floor((root.clientWidth || 640) / scale));
  const started = performance.now();
  root.querySelector(".out").innerHTML = RENDERERS[data.kind](data, values, width);
  root.dataset.drawnMs = (performance.now() - started).toFixed(2);
  root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
}

function redraw(root) {
  // At most one redraw a frame: a fast drag fires several input events between two frames; the last one wins.
  if (root.pending) return;
  root.pending = true;
  requestAnimationFrame(() => {
    root.pending = false;
    show(root);
  });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let root = parentElement.querySelector(".instant");
  const signature = JSON.stringify([data.kind, data.controls.map((c) => [c.name, c.kind, c.lo, c.hi, c.choices])]);
  if (!root || root.dataset.signature !== signature) {
    if (root) root.remove();
    root = document.createElement("div");
    root.className = "instant";
    root.dataset.signature = signature;
    root.innerHTML = `<div class="controls">${data.controls.map(controlHtml).join("")}</div><div class="out"></div>`;
    parentElement.appendChild(root);
    root.querySelectorAll(".control input").forEach((input, n) => {
      input.addEventListener("input", () => {
        root.values[root.data.controls[n].name] = parseControl(root.data.controls[n], input);
        if (input.type === "range") redraw(root);
      });
      input.addEventListener("change", () => {
        root.values[root.data.controls[n].name] = parseControl(root.data.controls[n], input);
        redraw(root);
        root.sent = JSON.stringify(root.values);
        root.sentAt = performance.now();
        setStateValue("value", root.sent); // (an object as a state value never reached Python: a JSON string)
      });
    });
    new ResizeObserver(() => root.data && show(root)).observe(root);
  }
  root.classList.toggle("presenter", Boolean(data.presenter));
  root.data = data;
  const server = Object.fromEntries(data.controls.map((c) => [c.name, c.value]));
  // While values sent by the last keystrokes are on their way, a rerun for an earlier one must not pull the
  // controls back: take the server's values once they are the ones sent last (or after 3 s: a Reset, a link).
  const caughtUp = !root.sent || JSON.stringify(server) === root.sent || performance.now() - root.sentAt > 3000;
  if (caughtUp) {
    root.sent = null;
    root.values = server;
  }
  show(root);
}
