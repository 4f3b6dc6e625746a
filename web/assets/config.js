// Where the operator API lives. Empty: the same origin as these pages (the local emulator, or one CloudFront
// front door for the static site and the admin function). A static site on another origin sets the API's
// origin here, e.g. "https://api.example.com", and lists its own origin in the API's WEB_ORIGINS setting.
export const API_BASE = "";
