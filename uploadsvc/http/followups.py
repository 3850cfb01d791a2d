"""Running the follow-ups a service returned once the client has its answer."""
from collections.abc import Iterable

from flask import Response, current_app

from ..services import followups
from ..services.followups import FollowUp


def after_response(response: Response, later: Iterable[FollowUp]) -> Response:
    """Run `later` in an app context when the response is closed (its body sent)."""
    later = tuple(later)
    if later:
        app = current_app._get_current_object()

        def run() -> None:
            with app.app_context():
                followups.run(later)

        response.call_on_close(run)
    return response
