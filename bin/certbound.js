#!/usr/bin/env node
// Installed entry point: the compiled CLI (`npm run certbound` runs the sources with tsx).
import '../dist/cli/index.js'
