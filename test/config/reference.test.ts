import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CONFIG_REFERENCE } from '../../src/config/reference.js'
import { CONFIG_DOC, renderConfigReference, schemaKeys } from '../../scripts/config-reference.js'

describe('docs/configuration.md, generated from the config schema', () => {
  const keys = schemaKeys()

  it('reads every key of the schema (control)', () => {
    const names = keys.map((k) => k.key)
    expect(names).toEqual(
      expect.arrayContaining(['trust_domain', 'server.listen', 'tokens.issuer']),
    )
    expect(keys.find((k) => k.key === 'tokens.signing_key_rotation')).toEqual({
      key: 'tokens.signing_key_rotation',
      value: '`off` or duration',
      schemaDefault: '30d',
    })
  })

  it('every schema key has a description in src/config/reference.ts, and a default', () => {
    const undescribed = keys.filter((k) => !CONFIG_REFERENCE[k.key]?.description?.trim())
    expect(undescribed.map((k) => k.key)).toEqual([])
    const noDefault = keys.filter(
      (k) => k.schemaDefault === undefined && CONFIG_REFERENCE[k.key]?.default === undefined,
    )
    expect(noDefault.map((k) => k.key)).toEqual([])
  })

  it('every entry of src/config/reference.ts names a key or a section of the schema', () => {
    const known = new Set(keys.flatMap((k) => [k.key, k.key.split('.')[0]!]))
    expect(Object.keys(CONFIG_REFERENCE).filter((k) => !known.has(k))).toEqual([])
  })

  it('the file is what `npm run docs:config` writes', () => {
    expect(readFileSync(CONFIG_DOC, 'utf8')).toBe(renderConfigReference())
  })
})
