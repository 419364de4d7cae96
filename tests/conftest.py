"""Shared fixtures: named actors and a small sample network (like healthchecks' hc/test.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User

from resourcemonitor.inventory.models import CheckMethod, Device, Kind, Site, Tag


@dataclass
class Network:
    london: Site
    paris: Site
    core: Device
    dist: Device
    access: Device
    phone: Device
    pc: Device
    server: Device


@pytest.fixture(autouse=True)
def _fresh_device_lists(settings) -> None:
    """Unit tests write and read back at once: the web's short list cache would hide that."""
    settings.RESMON_LIST_CACHE_S = 0


@pytest.fixture
def alice(db) -> User:
    """An administrator."""
    return User.objects.create_superuser("alice", "alice@example.org", "alice-password-1")


@pytest.fixture
def bob(db) -> User:
    """A plain user with no special rights."""
    return User.objects.create_user("bob", "bob@example.org", "bob-password-1")


@pytest.fixture
def carol(db) -> User:
    """An operator (acknowledges, manages devices, maintenance and channel routing)."""
    user = User.objects.create_user("carol", "carol@example.org", "carol-password-1")
    user.groups.add(Group.objects.get(name="operator"))
    return user


@pytest.fixture
def network(db) -> Network:
    """core router → distribution switch → access switch → phone and PC, in London;
    a server in Paris. All checked over HTTP on port 8080."""
    london = Site.objects.create(name="London")
    paris = Site.objects.create(name="Paris")
    voice = Tag.objects.create(name="voice")

    def device(name: str, kind: str, address: str, site: Site, parent: Device | None) -> Device:
        return Device.objects.create(
            name=name,
            kind=kind,
            address=address,
            site=site,
            parent=parent,
            check_method=CheckMethod.HTTP,
            check_port=8080,
        )

    core = device("lon-core-1", Kind.ROUTER, "127.20.0.1", london, None)
    dist = device("lon-dist-1", Kind.SWITCH, "127.20.0.2", london, core)
    access = device("lon-acc-1", Kind.SWITCH, "127.20.0.3", london, dist)
    phone = device("lon-phone-1", Kind.PHONE, "127.20.0.4", london, access)
    phone.tags.add(voice)
    pc = device("lon-pc-1", Kind.PC, "127.20.0.5", london, access)
    server = device("par-srv-1", Kind.SERVER, "127.20.1.1", paris, None)
    return Network(london, paris, core, dist, access, phone, pc, server)
