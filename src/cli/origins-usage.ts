// What `corsgate origins` says back: its usage text, and why a write to a policy the config
// does not define is refused. Shared by list/add/remove/deny/undeny (origins.ts) and
// export/import (origins-transfer.ts).
import type { LoadedConfig } from '../config/load.js'

export const USAGE = `usage: corsgate origins list|add|remove|deny|undeny --policy NAME [PATTERN...] [--ttl 7d] [--redis URL] [--config FILE] [--json] [--dry-run] [--allow-unknown-policy]
       corsgate origins export [--policy NAME]... [--output FILE] [--redis URL] [--config FILE]
       corsgate origins import FILE|- [--replace] [--dry-run] [--redis URL] [--config FILE] [--allow-unknown-policy]
       corsgate origins observed --policy NAME [--since 24h] [--outcome O] [--json] [--redis URL] [--config FILE]`

export function unknownPolicyMessage (policy: string, loaded: LoadedConfig): string {
  const names = Object.keys(loaded.config.policies).map((n) => `"${n}"`).join(', ')
  return `policy "${policy}" is not defined in ${loaded.file} (it defines ${names}), so no gateway using that file reads its Redis keys; nothing written. ` +
    'Pass the gateways\' config with --config FILE (or CORSGATE_CONFIG), or --allow-unknown-policy to write anyway'
}
