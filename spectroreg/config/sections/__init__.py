"""
One module per configuration section: the settings classes, whose fields
declare the section's keys (L{spectroreg.config.declare.key}), and the rules
that tie keys of the section together, which are written by hand.
"""
