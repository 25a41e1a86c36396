// The ffseg page: upload a file, follow the scoring, show the document that
// `ffseg detect` writes as an overlay, score cards and a per-frame chart.
// Plain browser JavaScript: no build step, no library, nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let threshold = 0.5;

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function label(score) { return score >= threshold ? "fake" : "real"; }

async function loadModelCard() {
  try {
    const card = await (await fetch("api/model")).json();
    const classes = (card.class_names || []).join(", ") || "unknown";
    const when = card.trained ? `trained ${card.trained}` :
      (card.exported ? `exported ${card.exported}` : "training date unknown");
    $("model-card").textContent = `Model ${card.name}: trained on ${card.dataset || "an unknown dataset"}, ` +
      `${card.image_size || "?"} px input, classes ${classes}, ${when}.`;
    if (card.warning) {
      const box = $("sample-warning");
      box.replaceChildren(element("strong", {}, "Scores from this model mean nothing on real media. "),
                          document.createTextNode(card.warning));
      box.hidden = false;
    }
  } catch (error) {
    $("model-card").textContent = `The model card could not be read (${error}).`;
  }
}

function showStatus(text, done, total) {
  $("status").hidden = false;
  $("status-text").textContent = text;
  const bar = $("progress");
  if (total) { bar.max = total; bar.value = done || 0; } else { bar.removeAttribute("value"); }
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

// Reads the answer of POST api/detect?progress=1: one JSON event per line.
async function analyse(file) {
  const body = new FormData();
  body.append("file", file, file.name);
  showError("");
  showStatus(`Uploading ${file.name}…`);
  const response = await fetch("api/detect?progress=1", { method: "POST", body });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* keep the status */ }
    throw new Error(detail);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const event = JSON.parse(line);
      if (event.event === "queued") {
        showStatus(event.ahead ? `Waiting: ${event.ahead} request(s) ahead…` : "Starting…");
      } else if (event.event === "started") {
        showStatus(`Scoring ${file.name}…`, 0, event.total);
      } else if (event.event === "progress") {
        const of = event.total ? ` of ${event.total}` : "";
        showStatus(`Scoring ${file.name}: frame ${event.done}${of}`, event.done, event.total);
      } else if (event.event === "result") {
        return event.result;
      } else if (event.event === "error") {
        throw new Error(event.detail);
      }
    }
    if (done) throw new Error("the server closed the connection before the result");
  }
}

// Faces of consecutive frames that overlap are the same face (for the cards).
function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

function faceTracks(frames) {
  const tracks = [];
  for (const frame of frames) {
    for (const face of frame.faces) {
      let best = null, bestOverlap = 0.3;
      for (const track of tracks) {
        if (track.last === frame.index) continue;
        const overlap = iou(track.box, face.box);
        if (overlap > bestOverlap) { best = track; bestOverlap = overlap; }
      }
      if (!best) { best = { scores: [], box: face.box, first: frame.index, last: -1, face }; tracks.push(best); }
      best.scores.push(face.score);
      best.box = face.box;
      best.last = frame.index;
    }
  }
  tracks.sort((a, b) => b.scores.length - a.scores.length || a.first - b.first);
  return tracks;
}

function card(title, score, lines, thumbnail) {
  const node = element("div", { class: `card ${label(score)}` });
  if (thumbnail) node.append(thumbnail);
  node.append(element("div", { class: "detail" }, title),
              element("div", { class: "label" }, label(score)),
              element("div", { class: "score" }, score.toFixed(3)));
  for (const line of lines) node.append(element("div", { class: "detail" }, line));
  return node;
}

function thumbnailOf(image, box) {
  const canvas = element("canvas", { width: 150, height: 150 });
  const draw = () => canvas.getContext("2d").drawImage(
    image, box[0], box[1], box[2] - box[0], box[3] - box[1], 0, 0, 150, 150);
  if (image.complete && image.naturalWidth) draw(); else image.addEventListener("load", draw);
  return canvas;
}

// The score of each scored frame's largest face, over the video's frames.
function drawChart(canvas, result) {
  const width = canvas.width, height = canvas.height;
  const left = 44, right = 12, top = 12, bottom = 30;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  const lastFrame = Math.max(result.frame_count - 1, 1);
  const x = (index) => left + (width - left - right) * index / lastFrame;
  const y = (score) => top + (height - top - bottom) * (1 - score);
  context.strokeStyle = "#d9dde3";
  context.fillStyle = "#5b6472";
  context.font = "12px sans-serif";
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    context.beginPath(); context.moveTo(left, y(tick)); context.lineTo(width - right, y(tick)); context.stroke();
    context.fillText(tick.toFixed(2), 6, y(tick) + 4);
  }
  context.fillText("frame 0", left, height - 10);
  context.fillText(`frame ${lastFrame}`, width - right - 70, height - 10);
  context.setLineDash([6, 4]);
  context.strokeStyle = "#d62828";
  context.beginPath(); context.moveTo(left, y(threshold)); context.lineTo(width - right, y(threshold)); context.stroke();
  context.setLineDash([]);
  const points = [];
  for (const frame of result.frames) {
    const largest = frame.faces.find((face) => face.largest);
    points.push(largest ? [frame.index, largest.score] : null);
  }
  context.strokeStyle = "#2f6fd6";
  context.lineWidth = 2;
  context.beginPath();
  let drawing = false;
  for (const point of points) {
    if (!point) { drawing = false; continue; }
    if (drawing) context.lineTo(x(point[0]), y(point[1])); else context.moveTo(x(point[0]), y(point[1]));
    drawing = true;
  }
  context.stroke();
  context.fillStyle = "#2f6fd6";
  for (const point of points) {
    if (point) { context.beginPath(); context.arc(x(point[0]), y(point[1]), 2.5, 0, 2 * Math.PI); context.fill(); }
  }
  canvas.dataset.points = String(points.filter(Boolean).length);
}

async function overlayElement(result) {
  // Fetched as a blob: the overlay is played and shown from memory, seekable.
  const blob = await (await fetch(result.overlay)).blob();
  const url = URL.createObjectURL(blob);
  if (result.kind === "video") {
    const player = element("video", { class: "overlay", controls: "", muted: "", loop: "", playsinline: "" });
    player.muted = true;
    player.src = url;
    return player;
  }
  const image = element("img", { class: "overlay", alt: `faces of ${result.input} with their localization maps` });
  image.src = url;
  return image;
}

async function showResult(result) {
  threshold = result.verdict.threshold;
  const article = element("article", { class: `result ${result.kind}` });
  const title = element("h2", {}, `${result.input}: `);
  title.append(element("span", { class: `verdict ${result.verdict.label}` },
                       `${result.verdict.label} ${result.verdict.score.toFixed(3)}`));
  article.append(title);
  const faceCount = result.frames.reduce((sum, frame) => sum + frame.faces.length, 0);
  const meta = result.kind === "image"
    ? `image ${result.width}×${result.height}, ${faceCount} face(s); verdict = the largest face's score`
    : `video ${result.width}×${result.height}, ${result.frames_scored} of ${result.frame_count} frames scored ` +
      `(${result.sampling}), ${result.frames_without_face} without a face; verdict = mean score of the largest face`;
  article.append(element("p", { class: "meta" }, meta));
  for (const warning of result.warnings || []) article.append(element("p", { class: "notes" }, warning));
  const media = element("div", { class: "media" });
  const shown = await overlayElement(result);
  media.append(shown);
  article.append(media);
  const cards = element("div", { class: "cards" });
  if (result.kind === "image") {
    result.frames[0].faces.forEach((face, number) => {
      cards.append(card(`Face ${number + 1}${face.largest ? " (largest)" : ""}`, face.score,
                        [`detector confidence ${face.detection_score.toFixed(2)}`],
                        thumbnailOf(shown, face.box)));
    });
  } else {
    faceTracks(result.frames).forEach((track, number) => {
      const mean = track.scores.reduce((a, b) => a + b, 0) / track.scores.length;
      cards.append(card(`Face ${number + 1}`, mean,
                        [`mean of ${track.scores.length} frame(s), ${track.first}–${track.last}`,
                         `min ${Math.min(...track.scores).toFixed(3)}, max ${Math.max(...track.scores).toFixed(3)}`]));
    });
  }
  article.append(cards);
  if (result.kind === "video") {
    const chart = element("div", { class: "chart" });
    chart.append(element("div", { class: "detail" }, "Score of the largest face per scored frame (dashed: threshold)"));
    const canvas = element("canvas", { width: 1000, height: 200, class: "frame-chart" });
    chart.append(canvas);
    article.append(chart);
    drawChart(canvas, result);
  }
  $("results").prepend(article);
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { showError("Choose a photo or a video first."); return; }
  $("analyse").disabled = true;
  try {
    const result = await analyse(file);
    $("status").hidden = true;
    await showResult(result);
  } catch (error) {
    $("status").hidden = true;
    showError(error.message);
  } finally {
    $("analyse").disabled = false;
  }
});

loadModelCard();
