"""An example third-party TicketCore plugin.

Kept empty on purpose: TicketCore imports ``ticketcore_example_plugin.tagger`` only when the
plugin is enabled, and importing this package must stay free.
"""
