/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Base URL of the REST API (Envoy); http://localhost:8080 when unset. */
  readonly VITE_API_BASE?: string
}

interface ImportMeta {
  readonly env: ImportMetaEnv
}
