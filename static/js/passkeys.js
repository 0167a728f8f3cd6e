// Passkeys in the browser (WebAuthn): the "Add a passkey" form and the sign-in step
// "Use your passkey". The server sends options as JSON with base64url fields and checks
// every answer (mailgosend/auth/passkeys.py); this module only converts and forwards.

const toBytes = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
};

const toText = (buffer) => {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const descriptors = (list) => (list || []).map((d) => ({ ...d, id: toBytes(d.id) }));

function creationOptions(json) {
  return {
    ...json,
    challenge: toBytes(json.challenge),
    user: { ...json.user, id: toBytes(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

function requestOptions(json) {
  return { ...json, challenge: toBytes(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

// The PublicKeyCredential as the JSON the server reads (WebAuthn §5.1.8, toJSON()).
function credentialJSON(credential) {
  const r = credential.response;
  const response = { clientDataJSON: toText(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toText(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = toText(r.authenticatorData);
    response.signature = toText(r.signature);
    if (r.userHandle) response.userHandle = toText(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
  };
}

async function postJSON(url, token, body) {
  const answer = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
    body: JSON.stringify(body || {}),
  });
  let value = {};
  try {
    value = await answer.json();
  } catch {
    value = {};
  }
  if (!answer.ok) throw new Error(value.error || "The server refused the request. Reload the page and try again.");
  return value;
}

function showError(message) {
  const box = document.getElementById("passkey-error");
  if (box) box.textContent = message;
}

const CANCELLED = "The passkey was not used (cancelled, timed out, or not available). Try again.";

function supported() {
  if (window.PublicKeyCredential && navigator.credentials) return true;
  showError("This browser cannot use passkeys.");
  return false;
}

const addForm = document.getElementById("passkey-add");
if (addForm) {
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!supported()) return;
    const token = addForm.elements.csrf_token.value;
    const name = addForm.elements.name.value.trim();
    const button = addForm.querySelector("button");
    button.disabled = true;
    showError("");
    try {
      const options = await postJSON("/passkeys/register/options", token);
      let credential;
      try {
        credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      } catch {
        throw new Error(CANCELLED);
      }
      await postJSON("/passkeys/register", token, { name, credential: credentialJSON(credential) });
      window.location.assign("/passkeys");
    } catch (error) {
      showError(error.message);
      button.disabled = false;
    }
  });
}

const signInForm = document.getElementById("passkey-sign-in");
if (signInForm) {
  signInForm.addEventListener("submit", async (event) => {
    if (signInForm.elements.credential.value) return; // the signed answer: let it go
    event.preventDefault();
    if (!supported()) return;
    const token = signInForm.elements.csrf_token.value;
    const button = signInForm.querySelector("button");
    button.disabled = true;
    showError("");
    try {
      const options = await postJSON("/passkeys/login/options", token);
      let credential;
      try {
        credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
      } catch {
        throw new Error(CANCELLED);
      }
      signInForm.elements.credential.value = JSON.stringify(credentialJSON(credential));
      signInForm.submit();
    } catch (error) {
      showError(error.message);
      button.disabled = false;
    }
  });
}
