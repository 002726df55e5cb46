"""The run config: schema, field rules, cross-field checks, presets and --set overrides. Imports no torch."""
