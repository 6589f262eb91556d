"""Everything that makes one sample, pure and seeded: pools (fonts, backgrounds, corpus), the style and
effect draws, rendering, compositing, skeletons and the invariants. `Synthesizer(cfg).sample(i)` is the
entry point; sample i depends only on (cfg, i)."""
