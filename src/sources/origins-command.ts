// `corsgate origins …`: edits the Redis whitelists (SPEC.md "CLI"). Implemented with the Redis source.
export async function runOriginsCommand (_args: string[], _configPath: (flag: string | undefined) => string): Promise<number> {
  console.error('corsgate origins: not available in this build')
  return 2
}
