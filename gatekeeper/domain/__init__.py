"""Pure domain: checklist specs, gate rules, state machines. Standard library only."""
