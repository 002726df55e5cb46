"""The algorithm as pure tensor functions: advantages, losses, ranked maths, schedules. Imports nothing else of the engine."""
