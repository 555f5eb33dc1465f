"""The dashboard's confirmations: a yes/no question, and the explicit one a live session's
arming needs (the operator types the task's name)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class Confirm(ModalScreen[bool]):
    """Ask `question`; True only on Yes (`y`), False on No, `n` or Escape."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str, *, danger: bool = False) -> None:
        super().__init__(classes="danger" if danger else None)
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", id="yes", variant="error" if "danger" in self.classes
                             else "primary")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter alone never confirms

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class TypeToConfirm(ModalScreen[bool]):
    """Ask `question` and confirm only when the operator types `word` exactly and presses
    Enter; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, word: str) -> None:
        super().__init__(classes="danger")
        self.question = question
        self.word = word

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            yield Label(f"Type [b]{self.word}[/] and press Enter to confirm, Escape to cancel.")
            yield Input(placeholder=self.word, id="word")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.word:
            self.dismiss(True)
        else:
            self.notify(f"that is not {self.word!r}: nothing done", severity="warning")
            self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
