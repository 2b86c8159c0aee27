// oidc-provider ships no types; the bench uses only its constructor, callback() and on().
declare module 'oidc-provider' {
  const Provider: new (
    issuer: string,
    configuration: Record<string, unknown>,
  ) => {
    callback(): (
      req: import('node:http').IncomingMessage,
      res: import('node:http').ServerResponse,
    ) => void
    on(event: string, listener: (...args: any[]) => void): void
  }
  export default Provider
}
