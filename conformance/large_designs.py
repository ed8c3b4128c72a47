"""Large simulated designs shaped like the two big fits of Bates's UseR! 2010 lme4 lecture.

Generated on demand from a seed (vectorised numpy, seconds), never stored. The response is
simulated from the model, so the true parameters are known (``Design.truth``):

- ``grades()``: like the lecture's ``anon.grades.df`` (1.7 million grade points of 54,711
  students, 7,915 instructors, 102 departments; unbalanced, partially crossed), model
  ``gr.pt ~ (1 | id) + (1 | instr) + (1 | dept)``; truth = the lecture's REML estimates.
  Over 10 years: each instructor belongs to one department (in one of 12 colleges) and is
  faculty (all years) or temporary (1 to 3 years); a student studies 4 years and takes most
  courses in a major department, many in the general-education departments and electives in
  the major's college, each from an instructor of the course's department active that year.
- ``state_test()``: like Harold Doran's state achievement-test data in the same lecture
  (5,212,017 scores of 1,876,788 students and 47,480 teachers over 4 years, 29 fixed effects),
  model ``score ~ year + grade + x1 + ... + x20 + (1 | student) + (1 | teacher)``. Students
  and teachers are clustered in schools and schools in districts; some students change
  school (within their district) between years.
- ``ratings_chunks()``: a MovieLens-shaped crossed design (10 million ratings of 20,000 items by
  100,000 users), made chunk by chunk, model
  ``rating ~ released + weekend + (1 | user) + (1 | item)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Design:
    """A simulated data set, the model to fit, and the parameters it was simulated from."""

    name: str
    data: pd.DataFrame
    formula: str
    REML: bool
    truth: dict = field(default_factory=dict)  # sd of each grouping factor, "sigma", "beta"


def grades(seed: int = 20100715, n: int = 1_700_000, n_students: int = 54_711, n_instr: int = 7_915,
           n_dept: int = 102, n_college: int = 12, years: int = 10, faculty: float = 0.35,
           shares: tuple[float, float, float] = (0.6, 0.25, 0.15)) -> Design:
    """The grades design over ``years`` years. Departments are grouped in colleges; a share
    ``faculty`` of the instructors teach all years, the others 1 to 3 consecutive years; each
    student studies 4 consecutive years. ``shares``: fractions of a student's courses in the
    major department, in the general-education departments (the 8 largest) and in the
    departments of the major's college (electives). A course is taught by an instructor of
    its department active that year."""
    rng = np.random.default_rng(seed)
    dept_w = rng.lognormal(0.0, 0.8, n_dept)
    instr_dept = np.sort(np.concatenate([np.arange(n_dept), rng.choice(n_dept, n_instr - n_dept, p=dept_w / dept_w.sum())]))
    size = np.bincount(instr_dept, minlength=n_dept).astype(float)
    college = np.sort(rng.integers(0, n_college, n_dept))
    counts = 1 + rng.multinomial(n - n_students, _dirichlet(rng, n_students, 2.0))
    student = np.repeat(np.arange(n_students), counts)
    major = rng.choice(n_dept, n_students, p=size / size.sum())[student]
    gened = np.argsort(-size)[:8]
    elective = _member(rng, college[major], college, size)
    kind = rng.choice(3, n, p=np.asarray(shares) / np.sum(shares))
    dept = np.where(kind == 0, major, np.where(kind == 1, rng.choice(gened, n, p=size[gened] / size[gened].sum()), elective))
    year = (rng.integers(0, years - 3, n_students)[student] + rng.integers(0, 4, n))
    instr = _active_instructor(rng, dept, year, instr_dept, years, faculty)
    instr, dept = _cover(rng, instr, dept, instr_dept)
    sd = {"id": 0.555, "instr": 0.282, "dept": 0.301}
    sigma, mu = 0.635, 3.1996
    y = (mu + rng.normal(0, sd["id"], n_students)[student] + rng.normal(0, sd["instr"], n_instr)[instr]
         + rng.normal(0, sd["dept"], n_dept)[dept] + rng.normal(0, sigma, n))
    data = pd.DataFrame({"gr.pt": y, "id": _codes(student, n_students), "instr": _codes(instr, n_instr),
                         "dept": _codes(dept, n_dept)})
    return Design("grades", data, "gr.pt ~ (1 | id) + (1 | instr) + (1 | dept)", True,
                  {"sd": sd, "sigma": sigma, "beta": {"(Intercept)": mu}})


def _active_instructor(rng: np.random.Generator, dept: np.ndarray, year: np.ndarray, instr_dept: np.ndarray,
                       years: int, faculty: float) -> np.ndarray:
    """For each course, an instructor of its department active in its year (popularity-weighted);
    the first instructor of each department is faculty, so no department-year is empty."""
    n_instr = instr_dept.size
    first = np.searchsorted(instr_dept, np.arange(instr_dept.max() + 1))
    is_fac = rng.random(n_instr) < faculty
    is_fac[first] = True
    length = np.where(is_fac, years, rng.integers(1, 4, n_instr))
    start = np.where(is_fac, 0, rng.integers(0, years, n_instr))
    length = np.minimum(length, years - start)
    who = np.repeat(np.arange(n_instr), length)
    when = start[who] + np.arange(who.size) - np.repeat(np.cumsum(length) - length, length)
    group = instr_dept[who] * years + when
    order = np.argsort(group, kind="stable")
    who, group = who[order], group[order]
    pick = _member(rng, dept * years + year, group, rng.lognormal(0.0, 1.0, n_instr)[who])
    return who[pick]


def state_test(seed: int = 20100716, n: int = 5_212_017, n_students: int = 1_876_788, n_teachers: int = 47_480,
               n_schools: int = 2_400, school_per_district: int = 10, p_move: float = 0.08,
               beta: np.ndarray | None = None) -> Design:
    """The state-test design: 4 years, students followed over 1 to 4 consecutive years, one
    teacher per student and year (a teacher of the student's school that year); ``beta``: the
    fixed effects (default: drawn from the seed)."""
    rng = np.random.default_rng(seed)
    counts = 1 + rng.multinomial(n - n_students, _dirichlet(rng, n_students, 1.5))
    counts = _cap(rng, counts, 4)
    student = np.repeat(np.arange(n_students), counts)
    first = np.cumsum(counts) - counts
    wave = np.arange(n) - np.repeat(first, counts)  # 0.. for each student's successive years
    year = rng.integers(0, 5 - counts)[student] + wave
    grade = rng.integers(0, 7 - np.minimum(counts, 4))[student] + wave
    teacher_school = np.sort(np.concatenate([np.arange(n_schools), rng.integers(0, n_schools, n_teachers - n_schools)]))
    home = rng.integers(0, n_schools, n_students)[student]
    move = (rng.random(n) < p_move) & (wave > 0)
    moved_to = (home // school_per_district) * school_per_district + rng.integers(0, school_per_district, n_students)[student]
    school = np.where(np.cumsum(move) - np.repeat(np.cumsum(move)[first] - move[first], counts) > 0, moved_to, home)
    school = np.minimum(school, n_schools - 1)
    teacher = _member(rng, school, teacher_school, np.ones(n_teachers))
    teacher, _ = _cover(rng, teacher, school, teacher_school)
    X = rng.normal(size=(n, 20))
    X[:, :8] = X[:, :8] > 0.5  # binary covariates (demographics, programmes)
    sd = {"student": 0.8, "teacher": 0.35}
    sigma = 0.6
    if beta is None:
        beta = np.concatenate([[0.2], np.linspace(0.1, 0.3, 3), np.linspace(0.2, 1.0, 5), rng.normal(0, 0.2, 20)])
    Xf = np.column_stack([np.ones(n)] + [year == k for k in (1, 2, 3)] + [grade == k for k in range(1, 6)] + [X])
    y = (Xf @ beta + rng.normal(0, sd["student"], n_students)[student] + rng.normal(0, sd["teacher"], n_teachers)[teacher]
         + rng.normal(0, sigma, n))
    cols = {"score": y, "year": _codes(year, 4), "grade": _codes(grade, 6)}
    cols.update({f"x{k + 1}": X[:, k] for k in range(20)})
    cols.update({"student": _codes(student, n_students), "teacher": _codes(teacher, n_teachers)})
    names = ["(Intercept)"] + [f"year{k}" for k in (1, 2, 3)] + [f"grade{k}" for k in range(1, 6)] + [f"x{k}" for k in range(1, 21)]
    formula = "score ~ year + grade + " + " + ".join(f"x{k}" for k in range(1, 21)) + " + (1 | student) + (1 | teacher)"
    return Design("state_test", pd.DataFrame(cols), formula, True,
                  {"sd": sd, "sigma": sigma, "beta": dict(zip(names, beta))})


def state_test_chunks(scale: int = 10, nchunks: int = 60, seed: int = 20100717):
    """A state-test-shaped design ``scale`` times as large (rows and students; the same 47,480
    teachers in 2,400 schools), as ``nchunks`` data frames made one at a time (never whole in
    memory): each chunk is a state-test design of its own districts (their schools, teachers
    and students), with the fixed effects shared; students and teachers numbered across chunks.
    Yields (frame, truth) pairs."""
    full = {"n": 5_212_017, "n_students": 1_876_788, "n_teachers": 47_480, "n_schools": 2_400}
    beta = state_test(seed, n=200, n_students=100, n_teachers=20, n_schools=10).truth["beta"]
    students = teachers = 0
    for k in range(nchunks):
        part = {key: (v * (scale if key in ("n", "n_students") else 1)) * (k + 1) // nchunks
                - (v * (scale if key in ("n", "n_students") else 1)) * k // nchunks for key, v in full.items()}
        des = state_test(seed + 1 + k, beta=np.array(list(beta.values())), **part)
        frame = des.data
        frame["student"] = frame["student"].cat.codes.astype(np.int64) + 1 + students
        frame["teacher"] = frame["teacher"].cat.codes.astype(np.int64) + 1 + teachers
        students, teachers = students + part["n_students"], teachers + part["n_teachers"]
        yield frame, {**des.truth, "beta": beta}


RATINGS_FORMULA = "rating ~ released + weekend + (1 | user) + (1 | item)"


def ratings_chunks(n: int = 10_000_000, n_users: int = 100_000, n_items: int = 20_000, nchunks: int = 50,
                   seed: int = 20240719, batch: int = 256):
    """A MovieLens-shaped crossed design as ``nchunks`` data frames made one at a time (never whole
    in memory; each chunk holds its own users, numbered across chunks): a user's number of ratings
    is 1 plus a multinomial share of log-normal activity (heavy-tailed, as on rating platforms), its
    items are drawn without replacement with Zipf-like popularity (weights ``1 / rank^0.9``, so
    each (user, item) pair occurs once); ``released`` is an item's standardised release year,
    ``weekend`` whether the rating was given on a weekend. ``batch``: users drawn at once (a
    ``batch x n_items`` table of keys). Yields (frame, truth) pairs; model ``RATINGS_FORMULA``."""
    rng = np.random.default_rng(seed)
    sd = {"user": 0.5, "item": 0.4}
    sigma = 0.8
    beta = {"(Intercept)": 3.5, "released": -0.1, "weekend": 0.05}
    u, v = rng.normal(0, sd["user"], n_users), rng.normal(0, sd["item"], n_items)
    released = rng.normal(0, 1, n_items)
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = _cap(rng, 1 + rng.multinomial(n - n_users, activity / activity.sum()), n_items)
    popularity = rng.permutation(1.0 / np.arange(1, n_items + 1) ** 0.9)
    truth = {"sd": sd, "sigma": sigma, "beta": beta}
    for k in range(nchunks):
        users = np.arange(n_users * k // nchunks, n_users * (k + 1) // nchunks)
        user, item = [], []
        for a in range(0, users.size, batch):
            who = users[a : a + batch]
            # Efraimidis-Spirakis: the items with the smallest Exp(1) / weight keys, per user
            order = np.argsort(rng.exponential(size=(who.size, n_items)) / popularity, axis=1)
            take = np.arange(n_items)[None, :] < counts[who][:, None]
            user.append(np.repeat(who, counts[who]))
            item.append(order[take])
        user, item = np.concatenate(user), np.concatenate(item)
        weekend = (rng.random(user.size) < 2 / 7).astype(float)
        y = (beta["(Intercept)"] + beta["released"] * released[item] + beta["weekend"] * weekend + u[user] + v[item]
             + rng.normal(0, sigma, user.size))
        yield pd.DataFrame({"rating": y, "released": released[item], "weekend": weekend, "user": user + 1,
                            "item": item + 1}), truth


CROSSED_BINOMIAL_FORMULA = "y ~ x + (1 | subject) + (1 | item)"


def crossed_binomial(seed: int = 20261203, n_subjects: int = 50_000, n_items: int = 2_000, per_subject: int = 20) -> Design:
    """A crossed binary design for glmer (issue 16): ``n_subjects`` subjects each answering
    ``per_subject`` distinct items drawn uniformly from ``n_items`` (1 million rows by default),
    a standard-normal covariate ``x`` per row, ``y ~ Bernoulli(logistic(-0.5 + 0.8 x + u_subject
    + v_item))`` with sd(u) = 1 and sd(v) = 0.5; model ``CROSSED_BINOMIAL_FORMULA`` (binomial, Laplace)."""
    rng = np.random.default_rng(seed)
    sd = {"subject": 1.0, "item": 0.5}
    beta = {"(Intercept)": -0.5, "x": 0.8}
    u, v = rng.normal(0, sd["subject"], n_subjects), rng.normal(0, sd["item"], n_items)
    subject = np.repeat(np.arange(n_subjects), per_subject)
    chunk = max(1, 4_000_000 // n_items)  # subjects per draw: the items with the smallest uniform keys
    item = np.concatenate([np.argpartition(rng.random((min(chunk, n_subjects - a), n_items)), per_subject, axis=1)
                           [:, :per_subject].ravel() for a in range(0, n_subjects, chunk)])
    x = rng.normal(0, 1, subject.size)
    eta = beta["(Intercept)"] + beta["x"] * x + u[subject] + v[item]
    y = (rng.random(subject.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    data = pd.DataFrame({"y": y, "x": x, "subject": _codes(subject, n_subjects), "item": _codes(item, n_items)})
    return Design("crossed_binomial", data, CROSSED_BINOMIAL_FORMULA, False, {"sd": sd, "beta": beta, "family": "binomial"})


def _dirichlet(rng: np.random.Generator, k: int, shape: float) -> np.ndarray:
    w = rng.gamma(shape, 1.0, k)
    return w / w.sum()


def _cap(rng: np.random.Generator, counts: np.ndarray, cap: int) -> np.ndarray:
    """Move the counts above ``cap`` to students below it (the total is kept)."""
    excess = int(np.sum(np.maximum(counts - cap, 0)))
    counts = np.minimum(counts, cap)
    while excess:
        room = np.flatnonzero(counts < cap)
        pick = rng.choice(room, min(excess, room.size), replace=False)
        counts[pick] += 1
        excess -= pick.size
    return counts


def _member(rng: np.random.Generator, group: np.ndarray, member_group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """For each row, a member of its group (members sorted by group), drawn with the weights."""
    cw = np.cumsum(weight)
    ngroups = max(int(member_group.max()), int(group.max())) + 1
    start = np.searchsorted(member_group, np.arange(ngroups))
    end = np.searchsorted(member_group, np.arange(ngroups), side="right")
    lo = np.where(start > 0, cw[np.maximum(start - 1, 0)], 0.0)
    target = lo[group] + rng.random(group.size) * (cw[end - 1] - lo)[group]
    return np.minimum(np.searchsorted(cw, target, side="right"), end[group] - 1)


def _cover(rng: np.random.Generator, member: np.ndarray, group: np.ndarray,
           member_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give every member at least one row: unused members replace the member of random rows."""
    member, group = member.copy(), group.copy()
    while True:
        count = np.bincount(member, minlength=member_group.size)
        unused = np.flatnonzero(count == 0)
        if not unused.size:
            return member, group
        rows = rng.choice(np.flatnonzero(count[member] > 1), unused.size, replace=False)
        member[rows], group[rows] = unused, member_group[unused]


def _codes(codes: np.ndarray, k: int) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=np.arange(1, k + 1))
