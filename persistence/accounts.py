"""Queries for users, teams and team membership."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from persistence.models import Team, TeamMember, User


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def lock_user(session: Session, user_id: int) -> None:
    """Holds the user's row until the transaction ends: others that lock it wait."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update())


def lock_team(session: Session, team_id: int) -> None:
    """Holds the team's row until the transaction ends: others that lock it wait."""
    session.execute(select(Team.id).where(Team.id == team_id).with_for_update())


def get_user_by_name(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def add_user(
    session: Session,
    name: str,
    *,
    password_hash: str | None,
    is_admin: bool = False,
    tier: str = "free",
) -> User:
    user = User(name=name, password_hash=password_hash, is_admin=is_admin, tier=tier)
    session.add(user)
    session.flush()
    return user


def get_team(session: Session, team_id: int) -> Team | None:
    return session.get(Team, team_id)


def get_team_by_name(session: Session, name: str) -> Team | None:
    return session.scalar(select(Team).where(Team.name == name))


def list_teams(session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.id)))


def add_team(session: Session, name: str, *, owner_id: int, tier: str = "free") -> Team:
    """A team always starts with its owner as a member, so it is never orphaned."""
    team = Team(name=name, tier=tier)
    session.add(team)
    session.flush()
    session.add(TeamMember(team_id=team.id, user_id=owner_id, role="owner"))
    session.flush()
    return team


def get_membership(session: Session, team_id: int, user_id: int) -> TeamMember | None:
    return session.get(TeamMember, (team_id, user_id))


def set_membership(session: Session, team_id: int, user_id: int, role: str) -> TeamMember:
    """Add the user to the team, or change their role if already a member."""
    member = get_membership(session, team_id, user_id)
    if member is None:
        member = TeamMember(team_id=team_id, user_id=user_id, role=role)
        session.add(member)
    else:
        member.role = role
    session.flush()
    return member


def remove_membership(session: Session, team_id: int, user_id: int) -> bool:
    member = get_membership(session, team_id, user_id)
    if member is None:
        return False
    session.delete(member)
    session.flush()
    return True


def list_members(session: Session, team_id: int) -> list[tuple[TeamMember, User]]:
    rows = session.execute(
        select(TeamMember, User)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.team_id == team_id)
        .order_by(User.name)
    )
    return [(m, u) for m, u in rows]


def count_owners(session: Session, team_id: int) -> int:
    query = select(func.count()).where(TeamMember.team_id == team_id, TeamMember.role == "owner")
    return session.scalar(query) or 0


def roles_for_user(session: Session, user_id: int) -> dict[int, str]:
    """team id -> role, for every team the user belongs to."""
    rows = session.execute(select(TeamMember.team_id, TeamMember.role).where(TeamMember.user_id == user_id))
    return {team_id: role for team_id, role in rows}
