// The formulas of the demos computed in the browser: the same as llmlab's Python, which the browser tests compare
// them with on fixed cases (tests/test_browser.py). Plain functions, no exports: ui/instant.py puts this file in
// front of the component's code, and the tests evaluate it on its own.

function logSumExp(xs) {
  // log Σ exp(x), stable for any finite max (−Infinity entries contribute nothing)
  let max = -Infinity;
  for (const x of xs) if (x > max) max = x;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const x of xs) sum += Math.exp(x - max);
  return max + Math.log(sum);
}

function softmax(xs) {
  // exp(x − max) / Σ, as torch.softmax computes it (so exact ties stay exact: 1/2, not 0.49999999999999994)
  const max = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / total);
}

function order(values) {
  // indices sorted by value, largest first (ties: lower index first)
  return Array.from(values.keys()).sort((a, b) => values[b] - values[a] || a - b);
}

function filteredSampling(logits, temperature, topK, topP) {
  // llmlab.nexttoken.filtered_sampling: logits/T, keep the top-k (ties with the k-th kept), then the top-p nucleus
  // (a token is kept if the mass before it is < p; the first always; ties: the lower id first). Returns
  // {probs (summing to 1, zeros for removed tokens), kept (what the filters left; a kept token can round to 0)}.
  if (!(temperature > 0)) throw new Error("temperature must be > 0");
  const vocab = logits.length;
  let scaled = logits.map((x) => x / temperature);
  if (topK > 0 && topK < vocab) {
    const kth = scaled[order(scaled)[topK - 1]];
    scaled = scaled.map((x) => (x < kth ? -Infinity : x));
  }
  let kept = scaled.map((x) => x > -Infinity);
  let probs = softmax(scaled);
  if (topP < 1.0) {
    const keep = new Array(vocab).fill(false);
    let before = 0;
    order(probs).forEach((i, rank) => {
      keep[i] = rank === 0 || before < topP;
      before += probs[i];
    });
    kept = kept.map((k, i) => k && keep[i]);
    probs = probs.map((p, i) => (kept[i] ? p : 0));
    const total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  return { probs, kept };
}

function samplingDistribution(logits, temperature, topK, topP) {
  // llmlab.nexttoken.sampling_distribution
  return filteredSampling(logits, temperature, topK, topP).probs;
}

function samplingSummary(logits, temperature, topK, topP) {
  // llmlab.nexttoken.sampling_summary, word for word
  const { probs, kept } = filteredSampling(logits, temperature, topK, topP);
  const vocab = probs.length;
  const n = (x) => x.toLocaleString("en-US");
  let carry = 0;
  let before = 0;
  for (const i of order(probs)) {
    if (!(before < 0.99)) break;
    carry += 1;
    before += probs[i];
  }
  const notes = [
    `${n(kept.filter(Boolean).length)} of ${n(vocab)} tokens can be sampled`,
    carry > 1 ? `the ${n(carry)} most likely carry 99% of the probability` : "the top token alone carries 99%",
  ];
  if (topK >= vocab) notes.push(`top-k ${n(topK)} ≥ the vocabulary (${n(vocab)}), so top-k removes nothing`);
  if (topP === 0) notes.push("top-p 0 keeps only the most likely token: sampling becomes greedy");
  return notes.join("; ") + ".";
}

function logKlRegularizedPolicy(refLogprobs, rewards, beta) {
  // llmlab.rlhf.log_kl_regularized_policy: log π*(y) = log π_ref(y) + r(y)/β − log Z; β = Infinity gives π_ref,
  // and where r/β overflows (β → 0) the limit: π_ref on the highest-reward candidates only.
  const best = Math.max(...rewards);
  const bestOnly = rewards.map((r) => (r === best ? 0 : -Infinity));
  let logits = refLogprobs.map((lp, i) => lp + (beta > 0 ? rewards[i] / beta : bestOnly[i]));
  if (beta > 0 && logits.some((x, i) => Number.isFinite(refLogprobs[i]) && !Number.isFinite(x))) {
    logits = refLogprobs.map((lp, i) => lp + bestOnly[i]);
  }
  const lse = logSumExp(logits);
  return logits.map((x) => x - lse);
}

function klOfLogs(logP, logQ) {
  // KL(p ‖ q) from log-probabilities, over p's support
  let kl = 0;
  logP.forEach((lp, i) => {
    if (Number.isFinite(lp)) kl += Math.exp(lp) * (lp - logQ[i]);
  });
  return kl;
}

function optimumAt(cands, beta) {
  // llmlab.rlhf.optimum_at: π* over the candidates at one β, its KL to π_ref and what it is expected to score
  const logPolicy = logKlRegularizedPolicy(cands.ref_logprobs, cands.proxy, beta);
  const logRef = logKlRegularizedPolicy(cands.ref_logprobs, cands.proxy.map(() => 0), Infinity);
  const policy = logPolicy.map(Math.exp);
  const expect = (values) => policy.reduce((s, p, i) => s + p * values[i], 0);
  return {
    beta,
    policy,
    kl: klOfLogs(logPolicy, logRef),
    expectedProxy: expect(cands.proxy),
    expectedTrue: expect(cands.true),
    expectedLength: expect(cands.lengths),
    expectedPadding: expect(cands.padding),
  };
}

function logSigmoid(x) {
  // log σ(x) without overflow at either end
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}

function dpoLoss(margin, beta) {
  // llmlab.dpo.dpo_loss: −log σ(β·margin), nats
  return -logSigmoid(beta * margin);
}

function dpoGradientWeight(margin, beta) {
  // llmlab.dpo.dpo_gradient_weight: σ(−β·margin)
  return Math.exp(logSigmoid(-beta * margin));
}
