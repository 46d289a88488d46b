"""Bot mode (https://ircv3.net/specs/extensions/bot-mode): user mode +B, ISUPPORT BOT, the bot tag, WHOIS 335."""

from __future__ import annotations

from tests.server.harness import Harness


def test_a_bot_says_so_in_isupport_whois_who_and_a_tag_on_what_it_sends() -> None:
    h = Harness()
    bot = h.connect()
    bot.send("NICK helper")
    bot.send("USER helper 0 * :Helper")
    assert any("BOT=B" in m.params for m in bot.messages() if m.command == "005")
    alice = h.user("alice", caps=["message-tags"])
    plain = h.user("plain")
    bot.lines()
    bot.send("MODE helper +B")
    assert bot.lines() == [":helper MODE helper +B"]
    bot.send("PRIVMSG #lobby :beep")
    tagged = [m for m in alice.messages() if m.command == "PRIVMSG"]
    assert len(tagged) == 1 and "bot" in tagged[0].tags and tagged[0].tags["bot"] in ("", None)
    assert plain.lines() == [":helper!~helper@127.0.0.1 PRIVMSG #lobby :beep"]
    bot.send("PART #lobby")
    assert all("bot" in m.tags for m in alice.messages())
    alice.send("WHOIS helper")
    assert [m.params[1:] for m in alice.messages() if m.command == "335"] == [["helper", "is a Bot on salotto"]]
    alice.send("WHO helper")
    (who,) = [m for m in alice.messages() if m.command == "352"]
    assert who.params[6] == "HB"
    bot.send("MODE helper -B")
    bot.send("JOIN #lobby")
    assert all("bot" not in m.tags for m in alice.messages())
    alice.send("WHOIS helper")
    assert "335" not in alice.commands()


def test_others_cannot_make_someone_a_bot() -> None:
    h = Harness()
    h.user("helper")
    alice = h.user("alice")
    alice.send("MODE helper +B")
    assert alice.numerics() == ["502"]
