// talklike console: chat with one persona, or let several talk among themselves.
// Plain JavaScript, no build step. Every text from the model or the user goes in with textContent.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  personas: [], // [{name, messages, ...}] from /api/personas
  mode: "chat",
  chatId: null, // this tab's conversation id; simulate uses chatId + "-sim"
  pending: false, // a chat reply is on its way
  simulating: false,
  stopRequested: false,
  maxTurns: 20,
};

// --- the API -----------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch("api/" + path, options);
  } catch (err) {
    throw new ApiError("cannot reach the server (is `talklike serve` still running?)", 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.message ? data.message : `the server answered ${response.status}`;
    throw new ApiError(message, response.status);
  }
  return data;
}

// --- small helpers -----------------------------------------------------------------------------------
function tabId() {
  // One conversation per browser tab, kept across reloads of that tab.
  let id = null;
  try {
    id = sessionStorage.getItem("talklike.console.id");
  } catch (err) {
    id = null;
  }
  if (!id || !/^[A-Za-z0-9_-]{1,40}$/.test(id)) {
    const bytes = new Uint8Array(9);
    crypto.getRandomValues(bytes);
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      sessionStorage.setItem("talklike.console.id", id);
    } catch (err) {
      // private mode: a fresh conversation per load is fine
    }
  }
  return id;
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function temperature() {
  return Number($("temperature").value);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function showTyping(text) {
  $("typing-text").textContent = text;
  $("typing").hidden = false;
}

function hideTyping() {
  $("typing").hidden = true;
}

function logOf(mode) {
  return $(mode === "chat" ? "chat-log" : "simulate-log");
}

function updateEmpty(mode) {
  $(mode === "chat" ? "chat-empty" : "simulate-empty").hidden = logOf(mode).children.length > 0;
}

function scrollDown(log) {
  log.scrollTop = log.scrollHeight;
}

// A message bubble: author name above, text inside; `mine` puts it on the right.
function addMessage(mode, author, text, { mine = false, right = false } = {}) {
  const log = logOf(mode);
  const item = document.createElement("li");
  item.className = "msg" + (mine ? " mine" : "") + (right ? " right" : "");
  item.dataset.author = author;
  if (!mine) item.style.setProperty("--hue", String(hue(author)));
  const name = document.createElement("span");
  name.className = "author";
  name.textContent = author;
  const bubble = document.createElement("p");
  bubble.className = "bubble";
  bubble.textContent = text;
  item.append(name, bubble);
  log.append(item);
  updateEmpty(mode);
  scrollDown(log);
  return item;
}

function addNote(mode, text) {
  const log = logOf(mode);
  const item = document.createElement("li");
  item.className = "system";
  item.textContent = text;
  log.append(item);
  updateEmpty(mode);
  scrollDown(log);
}

// --- personas and the model card ---------------------------------------------------------------------
function describeModel(model) {
  const parts = [];
  if (model.name) parts.push(model.name);
  if (model.preset) parts.push(`${model.preset} preset`);
  if (model.parameters) parts.push(`${Number(model.parameters).toLocaleString()} parameters`);
  if (model.messages) parts.push(`trained on ${Number(model.messages).toLocaleString()} messages`);
  if (typeof model.val_bpc === "number") parts.push(`${model.val_bpc.toFixed(2)} bits/char on held-out messages`);
  return parts.join(" · ") || "model loaded";
}

function plural(n, word) {
  return `${Number(n).toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

const CAST_SHOWN = 20; // simulate offers the most active personas

function listPersonas(personas, selected) {
  const select = $("persona");
  select.replaceChildren();
  for (const p of personas) {
    const option = document.createElement("option");
    option.value = p.name;
    option.textContent = `${p.name} — ${plural(p.messages, "message")}`;
    select.append(option);
  }
  if (selected && personas.some((p) => p.name === selected)) select.value = selected;
  select.disabled = personas.length === 0;
}

async function searchPersonas() {
  // Thousands of personas: the server lists the most active, and finds the others by name.
  const query = $("persona-search").value.trim();
  const current = currentPersona();
  try {
    const data = await api("personas?limit=200&q=" + encodeURIComponent(query));
    state.personas = data.personas;
    listPersonas(data.personas, current);
    personaChanged(true);
  } catch (err) {
    showError(err.message);
  }
}

function fillPersonas(data) {
  state.personas = data.personas;
  state.maxTurns = (data.limits && data.limits.max_turns) || 20;
  $("model-summary").textContent = describeModel(data.model || {});
  listPersonas(data.personas, data.default);
  $("persona-search").hidden = !(data.total > data.personas.length);

  const list = $("cast-list");
  list.replaceChildren();
  data.personas.slice(0, CAST_SHOWN).forEach((p, i) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = p.name;
    box.checked = i < 3;
    label.append(box, document.createTextNode(` ${p.name} `));
    const count = document.createElement("span");
    count.className = "hint";
    count.textContent = `(${plural(p.messages, "message")})`;
    label.append(count);
    list.append(label);
  });

  if (data.settings && typeof data.settings.temperature === "number") setTemperature(data.settings.temperature);
  personaChanged(false);
}

function currentPersona() {
  return $("persona").value;
}

function personaChanged(announce) {
  const name = currentPersona();
  const info = state.personas.find((p) => p.name === name);
  $("persona-info").textContent = info
    ? `${name} wrote ${plural(info.messages, "message")} in the training chats.` : "";
  $("message").placeholder = `Message ${name}…`;
  if (announce && logOf("chat").children.length > 0) addNote("chat", `Now talking to ${name}`);
}

function setTemperature(value) {
  $("temperature").value = String(value);
  $("temperature-value").textContent = Number(value).toFixed(2);
}

// --- chat --------------------------------------------------------------------------------------------
async function sendMessage() {
  const input = $("message");
  const text = input.value;
  if (state.pending || !text.trim()) return;
  const persona = currentPersona();
  clearError();
  const mine = addMessage("chat", "You", text, { mine: true });
  input.value = "";
  fitComposer();
  state.pending = true;
  $("send").disabled = true;
  showTyping(`${persona} is typing…`);
  try {
    const data = await api("chat", {
      conversation: state.chatId, persona, message: text, temperature: temperature(),
    });
    addMessage("chat", data.persona, data.reply);
  } catch (err) {
    mine.classList.add("failed");
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = "not sent";
    mine.append(note);
    if (!input.value) input.value = text; // nothing lost: the text is back in the box to resend
    fitComposer();
    showError(err.message);
  } finally {
    hideTyping();
    state.pending = false;
    $("send").disabled = false;
    input.focus();
  }
}

function fitComposer() {
  // The box grows with its text (Shift+Enter), up to the height the stylesheet allows.
  const box = $("message");
  box.style.height = "auto";
  box.style.height = `${box.scrollHeight + 2}px`;
}

async function clearConversation(action) {
  // "reset" starts over (persona and temperature kept); "forget" deletes everything kept about it.
  clearError();
  const id = state.mode === "chat" ? state.chatId : state.chatId + "-sim";
  try {
    await api(action, { conversation: id });
    logOf(state.mode).replaceChildren();
    updateEmpty(state.mode);
  } catch (err) {
    showError(err.message);
  }
}

async function restoreChat() {
  // A reload of the tab shows the conversation so far (the server remembers it).
  try {
    const data = await api("transcript?conversation=" + encodeURIComponent(state.chatId));
    if (data.persona && state.personas.some((p) => p.name === data.persona)) {
      $("persona").value = data.persona;
      personaChanged(false);
    }
    if (typeof data.temperature === "number") setTemperature(data.temperature);
    for (const m of data.messages) {
      addMessage("chat", m.mine ? "You" : m.author, m.text, { mine: m.mine });
    }
  } catch (err) {
    // a fresh start is fine
  }
}

// --- who would say this? -----------------------------------------------------------------------------
async function askWho() {
  // The model ranks the personas by how likely each wrote the text, after this tab's chat so far.
  const text = $("who-text").value;
  clearError();
  try {
    const data = await api("who", { text, conversation: state.chatId });
    const items = data.ranking.map((r) => {
      const item = document.createElement("li");
      item.textContent = `${r.persona} — ${(100 * r.share).toFixed(0)}%`;
      return item;
    });
    $("who-ranking").replaceChildren(...items);
  } catch (err) {
    showError(err.message);
  }
}

// --- simulate ----------------------------------------------------------------------------------------
function cast() {
  return Array.from($("cast-list").querySelectorAll("input:checked"), (box) => box.value);
}

function simulationButtons() {
  $("sim-start").disabled = state.simulating;
  $("sim-stop").disabled = !state.simulating;
  $("reset").disabled = $("forget").disabled = state.simulating && state.mode === "simulate";
}

async function startSimulation() {
  const names = cast();
  clearError();
  if (names.length === 0) {
    showError("pick at least one persona to take part");
    return;
  }
  const turns = Math.max(1, Math.min(100, Math.floor(Number($("turns").value) || 1)));
  $("turns").value = String(turns);
  state.simulating = true;
  state.stopRequested = false;
  simulationButtons();
  const conversation = state.chatId + "-sim";
  let done = 0;
  try {
    while (done < turns && !state.stopRequested) {
      $("sim-progress").textContent = `${done} of ${turns} messages`;
      showTyping("someone is typing…");
      // One message per call, so each appears as soon as it is written.
      const data = await api("simulate", {
        conversation, personas: names, turns: 1, temperature: temperature(),
      });
      hideTyping();
      for (const m of data.messages) {
        addMessage("simulate", m.author, m.text, { right: names.indexOf(m.author) % 2 === 1 });
        done += 1;
      }
    }
    $("sim-progress").textContent = state.stopRequested
      ? `stopped after ${plural(done, "message")}` : `done: ${plural(done, "message")}`;
  } catch (err) {
    showError(err.message);
    $("sim-progress").textContent = `stopped after ${plural(done, "message")}`;
  } finally {
    hideTyping();
    state.simulating = false;
    simulationButtons();
  }
}

function stopSimulation() {
  state.stopRequested = true;
  $("sim-progress").textContent = "stopping after this message…";
  $("sim-stop").disabled = true;
}

// --- modes -------------------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  const chat = mode === "chat";
  for (const [tab, on] of [["tab-chat", chat], ["tab-simulate", !chat]]) {
    $(tab).setAttribute("aria-selected", String(on));
    $(tab).tabIndex = on ? 0 : -1;
  }
  $("chat-view").hidden = !chat;
  $("simulate-view").hidden = chat;
  $("chat-settings").hidden = !chat;
  $("simulate-settings").hidden = chat;
  $("composer").hidden = !chat;
  if (!(chat ? state.pending : state.simulating)) hideTyping();
  else showTyping(chat ? `${currentPersona()} is typing…` : "someone is typing…");
  clearError();
  simulationButtons();
}

function tabKeys(event) {
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  const next = state.mode === "chat" ? "simulate" : "chat";
  setMode(next);
  $(next === "chat" ? "tab-chat" : "tab-simulate").focus();
  event.preventDefault();
}

// --- wiring ------------------------------------------------------------------------------------------
async function main() {
  state.chatId = tabId();
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });
  $("message").addEventListener("input", fitComposer);
  $("persona").addEventListener("change", () => personaChanged(true));
  let searching = null;
  $("persona-search").addEventListener("input", () => {
    clearTimeout(searching);
    searching = setTimeout(searchPersonas, 250);
  });
  $("temperature").addEventListener("input", () => setTemperature(temperature()));
  $("reset").addEventListener("click", () => clearConversation("reset"));
  $("forget").addEventListener("click", () => clearConversation("forget"));
  $("tab-chat").addEventListener("click", () => setMode("chat"));
  $("tab-simulate").addEventListener("click", () => setMode("simulate"));
  $("tab-chat").addEventListener("keydown", tabKeys);
  $("tab-simulate").addEventListener("keydown", tabKeys);
  $("who-form").addEventListener("submit", (event) => {
    event.preventDefault();
    askWho();
  });
  $("sim-start").addEventListener("click", startSimulation);
  $("sim-stop").addEventListener("click", stopSimulation);
  updateEmpty("chat");
  updateEmpty("simulate");

  try {
    fillPersonas(await api("personas"));
  } catch (err) {
    $("model-summary").textContent = "the model is not available";
    showError(err.message);
    return;
  }
  await restoreChat();
  document.body.dataset.ready = "true";
  $("message").focus();
}

document.addEventListener("DOMContentLoaded", main);
