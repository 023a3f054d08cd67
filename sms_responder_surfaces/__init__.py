"""The surfaces of sms_responder: what people and other systems use besides the webhook.

The core, sms_responder.py beside this package, answers Plivo's webhooks and runs alone. Each module
here is a surface built on it, or serves one (people, team); the core knows the surfaces by name
(SURFACES), imports each when it builds the application or the command line, and asks it for two
things:

    attach(app) -> routes       the WSGI routes it serves ({path: {method: handler}}; a path that
                                ends in "/" serves every path below it); it may also give the app
                                what the core calls back (metrics: app.metrics; verification:
                                app.text_makers)
    add_commands(commands)      its verbs on the command line (argparse sub-commands)

    api         speaking first: /api/messages, its tokens and their scopes, the OpenAPI document
                (openapi.json); the commands `text` and `tokens`. An outbound message is checked,
                queued and shown here, for the inbox and `messages` too.
    verification  /api/verifications: one-time codes texted through the outbox and checked once,
                  made from a seed and a key derived from PLIVO_AUTH_TOKEN (never stored); the
                  country allow-list and the prefix limit against SMS pumping. It registers the
                  app's text maker, which the outbox worker calls to put the code into the SMS.
    inbox       /inbox: the team's pages (templates/, static/); `users`. Two modules serve it and are no
                surface of their own: people (who may log in, logins, sessions, the verb `users`)
                and team (what the pages read and write of conversations: the list and its views,
                a conversation's timeline, search and its index, assignment, unread, notes, saved
                replies)
    operating   the commands `messages`, `stats` and `opt-outs`
    metrics     /metrics: Prometheus counters summed over a host's processes, gauges from the database

A surface uses the core (its app, store, settings, plumbing and helpers), and names in its
docstring what it uses; nothing in the core imports a surface but through SURFACES.
"""
