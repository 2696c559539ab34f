/* key_bridge.cpp — see key_bridge.h.  No PostgreSQL headers here. */
#include "key_bridge.h"

#include "subplan_key.h"

#include <string>

uint64_t
pilot_key_fingerprint(const pilot::KeyDesc *desc) noexcept
{
	return pilot::subplan_desc_fingerprint(*desc);
}

bool
pilot_key_compute(const pilot::KeyDesc *desc, unsigned parts, uint64_t *key, uint64_t *template_key,
				  const char **text, const char **template_text, const char **error) noexcept
{
	static pilot::SubplanKey result;
	static std::string problem;

	try
	{
		problem.clear();
		if (!pilot::subplan_key_compute(*desc, &result, &problem, parts))
		{
			*error = problem.c_str();
			return false;
		}
		*key = result.key;
		*template_key = result.template_key;
		*text = result.text.c_str();
		*template_text = result.template_text.c_str();
		return true;
	}
	catch (...)
	{
		*error = "subplan key: out of memory";
		return false;
	}
}
