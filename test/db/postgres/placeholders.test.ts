import { describe, expect, it } from 'vitest'
import { placeholderCache, toNumberedPlaceholders } from '../../../src/db/postgres/placeholders.js'

// Pure text conversion: runs with or without a PostgreSQL server (driver.test.ts runs the same
// kind of SQL on a real one).
describe('? placeholders to $n', () => {
  it.each([
    [
      'SELECT * FROM t WHERE a = ? AND b IN (?, ?)',
      'SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)',
    ],
    ["SELECT '?', ?", "SELECT '?', $1"],
    ["SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"],
    ["SELECT E'\\'?', ?", "SELECT E'\\'?', $1"],
    ["SELECT e'a\\\\', ?", "SELECT e'a\\\\', $1"],
    ['SELECT "odd?name", ?', 'SELECT "odd?name", $1'],
    ['SELECT "a""?", ?', 'SELECT "a""?", $1'],
    ['SELECT ? -- why?\n, ?', 'SELECT $1 -- why?\n, $2'],
    ['SELECT /* ? /* nested ? */ still ? */ ?', 'SELECT /* ? /* nested ? */ still ? */ $1'],
    ['DO $$ BEGIN PERFORM ?; END $$; SELECT ?', 'DO $$ BEGIN PERFORM ?; END $$; SELECT $1'],
    ['SELECT $tag$ ? $x$ ? $tag$, ?', 'SELECT $tag$ ? $x$ ? $tag$, $1'],
    ['SELECT a$b, ?', 'SELECT a$b, $1'],
    ["SELECT 'unterminated ?", "SELECT 'unterminated ?"],
    ['', ''],
  ])('%s', (sql, expected) => {
    expect(toNumberedPlaceholders(sql)).toBe(expected)
  })

  it('converts each text once and keeps a bounded number of them', () => {
    const convert = placeholderCache(2)
    expect(convert('SELECT ?')).toBe('SELECT $1')
    expect(convert('SELECT ?')).toBe('SELECT $1')
    expect(convert('SELECT ?, ?')).toBe('SELECT $1, $2')
    expect(convert('SELECT ?, ?, ?')).toBe('SELECT $1, $2, $3')
    expect(convert('SELECT ?')).toBe('SELECT $1')
  })
})
